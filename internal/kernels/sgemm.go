package kernels

import (
	"fmt"
	"runtime"
)

// Options controls how Sgemm executes. The zero value is ready to use and
// selects runtime.GOMAXPROCS(0) threads and the fastest micro-kernel the CPU
// supports.
type Options struct {
	// Threads is the maximum number of goroutines a call may use. Values
	// less than 1 mean runtime.GOMAXPROCS(0). Small problems use fewer
	// goroutines than allowed.
	Threads int

	// kern forces a specific micro-kernel; nil selects the best available.
	// It is set only by tests, to exercise every implementation path.
	kern *microKernel
}

// Sgemm computes
//
//	C = alpha * op(A) * op(B) + beta * C
//
// using the default Options. See Options.Sgemm.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Options{}.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemm computes
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where op(X) is X, or Xᵀ when the corresponding trans flag is true. All
// matrices are row-major: op(A) is m×k, stored as an m×k matrix with row
// stride lda (or as a k×m matrix when transA); op(B) is k×n, stored as k×n
// with row stride ldb (or n×k when transB); C is m×n with row stride ldc.
//
// When beta is zero C is overwritten and its previous contents, including
// NaNs and infinities, are ignored. When alpha is zero or k is zero, A and B
// are not read and C is only scaled by beta. C must not overlap A or B.
// Concurrent calls are safe as long as they write disjoint C.
//
// Sgemm panics if a dimension is negative, a stride is smaller than the
// stored row length (or smaller than 1), or a slice is too short to hold the
// matrix it describes.
func (o Options) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("A", ar, ac, a, lda)
	checkMatrix("B", br, bc, b, ldb)
	checkMatrix("C", m, n, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	kern := o.kern
	if kern == nil {
		kern = bestKernel
	}
	threads := o.Threads
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := gemm{
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, b: b, c: c,
		ldc:  ldc,
		kern: kern,
	}
	if transA {
		p.rsa, p.csa = 1, lda
	} else {
		p.rsa, p.csa = lda, 1
	}
	if transB {
		p.rsb, p.csb = 1, ldb
	} else {
		p.rsb, p.csb = ldb, 1
	}
	p.run(threads)
}

// checkMatrix panics unless s can hold a rows×cols row-major matrix with row
// stride ld.
func checkMatrix(name string, rows, cols int, s []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("kernels: %s: stride %d smaller than row length %d", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("kernels: %s: slice length %d, need %d for %d×%d with stride %d", name, len(s), need, rows, cols, ld))
	}
}

// scaleMatrix sets C = beta*C for an m×n matrix with row stride ldc; beta == 0
// writes zeros.
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		scaleBeta(beta, c[i*ldc:i*ldc+n])
	}
}
