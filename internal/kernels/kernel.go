package kernels

// kernelFunc is the signature of a GEMM micro-kernel. It computes
//
//	C(i, j) = alpha·Σ_p Ã(i, p)·B̃(p, j) + beta·C(i, j),  i < m, j < n, p < k,
//
// where Ã(i, p) = a[i*rsa + p*csa], B̃(p, j) = b[p*ldb + j] and
// C(i, j) = c[i*ldc + j], one mr×nr register tile at a time (m may exceed
// mr; n may not exceed nr). All mr·⌈m/mr⌉ rows of Ã and all nr columns of B̃
// must be readable even where they fall outside the m×n result (callers pad
// edge panels). When beta is zero C is only written, never read. Elements of
// C outside the m×n block are not touched. k ≥ 1, m ≥ 1 and 1 ≤ n ≤ nr.
type kernelFunc func(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32)

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
	// directBMaxTiles is the largest number of mr-row tiles a band of C may
	// have for B to be read in place when its rows are contiguous; taller
	// bands reuse each panel of B often enough that packing it into
	// contiguous memory pays off.
	directBMaxTiles int
	fn              kernelFunc
	// packT, if not nil, packs panels of a transposed B faster than the
	// portable code.
	packT packTFunc
}

// genericKernel is the portable Go micro-kernel, available on every
// platform.
var genericKernel = &microKernel{
	name: "generic",
	mr:   4, nr: 4,
	mc: 128, kc: 256, nc: 4096,
	directBMaxTiles: 32,
	fn:              kernelGeneric4x4,
}

// Implementation returns the name of the micro-kernel Sgemm uses by default
// on this machine: "avx512", "avx2" or "generic".
func Implementation() string { return bestKernel.name }
