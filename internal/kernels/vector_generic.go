//go:build !amd64 || purego

package kernels

// Without assembly the vector helpers are the portable Go loops.

func dot(x, y []float32) float32             { return dotGeneric(x, y) }
func axpy(alpha float32, x, y []float32)     { axpyGeneric(alpha, x, y) }
func scale(alpha float32, x []float32)       { scaleGeneric(alpha, x) }
func maxOf(x []float32) float32              { return maxOfGeneric(x) }
func expSub(x []float32, mx float32) float64 { return expSubGeneric(x, mx) }
