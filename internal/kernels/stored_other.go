//go:build !amd64 || purego

package kernels

// Without assembly the stored-matrix dot products are the portable Go loops.

func halfDots(Format, []byte, *[4][]float32, *[4]float32) int { return 0 }

func codeDots(w *Stored, first, n int, xs *[4][]float32, off int, seg *[4]float32) {
	codeDotsGeneric(w, first, n, xs, off, seg)
}

func q4GroupDots([]byte, []byte, *[4][]float32, int, *[4]float32) bool { return false }

// storedAsm is false: this build has no assembly.
var storedAsm = false
