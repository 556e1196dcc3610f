//go:build !amd64 || purego

package kernels

// Without assembly the stored-matrix dot products are the portable Go loops.

func halfDots(_ Format, _ []byte, _ int, _ *[4][]float32, out *[4]float32) int {
	*out = [4]float32{}
	return 0
}

func codeDots(w *Stored, first, n, m int, xs *[4][]float32, off int, seg *[4]float32) {
	codeDotsGeneric(w, first, n, m, xs, off, seg)
}

func q4GroupDots([]byte, []byte, int, *[4][]float32, int, int, *[4]float32) bool { return false }

func q4Width(int, int) int { return 16 }

// storedAsm, storedAVX512 and storedVNNI are false: this build has no assembly.
var storedAsm, storedAVX512, storedVNNI = false, false, false

func q4q8RowsAsm(codes, scales []byte, xq []int8, xs []float32, _ []int32, rows, groups, chunks int, y []float32) {
	q4q8RowsGo(codes, scales, xq, xs, rows, groups, chunks, y)
}

func q4q8BlocksAsm(codes, scales []byte, xq []int8, xs4 []float32, xc4 []int32, rows, groups int, y []float32) {
	q4q8BlocksGo(codes, scales, xq, xs4, xc4, rows, groups, y)
}

func quantizeQ8Group32(seg []float32, even, odd []int8) (float32, int32) {
	return quantizeQ8Group(seg, even, odd)
}

func bf16PairRows([]byte, int, []float32, int, int, []float32) {
	panic("kernels: no pair-order BF16 kernel in this build")
}
