//go:build amd64 && !purego

package kernels

// The vector helpers use the AVX2 assembly for the largest multiple of 8
// elements and finish the remainder in Go.

func dot(x, y []float32) float32 {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return dotGeneric(x, y)
	}
	return dotAVX2(&x[0], &y[0], n) + dotGeneric(x[n:], y[n:])
}

func axpy(alpha float32, x, y []float32) {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		axpyGeneric(alpha, x, y)
		return
	}
	_ = y[n-1]
	axpyAVX2(alpha, &x[0], &y[0], n)
	axpyGeneric(alpha, x[n:], y[n:])
}

func scale(alpha float32, x []float32) {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		scaleGeneric(alpha, x)
		return
	}
	scaleAVX2(alpha, &x[0], n)
	scaleGeneric(alpha, x[n:])
}

func maxOf(x []float32) float32 {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return maxOfGeneric(x)
	}
	mx := maxAVX2(&x[0], n)
	if n < len(x) {
		mx = max(mx, maxOfGeneric(x[n:]))
	}
	return mx
}

func expSub(x []float32, mx float32) float64 {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return expSubGeneric(x, mx)
	}
	return expSubAVX2(&x[0], n, mx) + expSubGeneric(x[n:], mx)
}

//go:noescape
func dotAVX2(x, y *float32, n int) float32

//go:noescape
func axpyAVX2(alpha float32, x, y *float32, n int)

//go:noescape
func scaleAVX2(alpha float32, x *float32, n int)

//go:noescape
func expSubAVX2(x *float32, n int, mx float32) float64

//go:noescape
func maxAVX2(x *float32, n int) float32
