package kernels

// kernelFunc is the signature of a GEMM micro-kernel. It computes the mr×nr
// tile
//
//	T(i, j) = Σ_p Ã(i, p) · B̃(p, j),  p < k,
//
// where Ã(i, p) = a[i*rsa + p*csa] for every i < mr (all mr rows must be
// readable, even when m < mr) and B̃(p, j) = b[p*nr + j] is a packed,
// zero-padded panel, and then stores
//
//	C(i, j) = T(i, j) + beta · C(i, j),  i < m, j < n,
//
// with C(i, j) = c[i*ldc + j]. When beta is zero C is only written, never
// read. Elements of C outside the m×n corner are not touched. k ≥ 1,
// 1 ≤ m ≤ mr and 1 ≤ n ≤ nr.
type kernelFunc func(k int, a []float32, rsa, csa int, b []float32, c []float32, ldc, m, n int, beta float32)

// microKernel describes one GEMM implementation path: its register tile, the
// cache block sizes tuned for it, and the kernel function.
type microKernel struct {
	name string
	// mr×nr is the register tile computed by one call of fn.
	mr, nr int
	// kc is the depth of a packed block; mc (a multiple of mr) is the number
	// of rows of A kept hot in L2; nc (a multiple of nr) is the number of
	// columns of B packed at once.
	mc, kc, nc int
	fn         kernelFunc
}

// genericKernel is the portable Go micro-kernel, available on every
// platform.
var genericKernel = &microKernel{
	name: "generic",
	mr:   4, nr: 4,
	mc: 128, kc: 256, nc: 4096,
	fn: kernelGeneric4x4,
}

// Implementation returns the name of the micro-kernel Sgemm uses by default
// on this machine: "avx512", "avx2" or "generic".
func Implementation() string { return bestKernel.name }
