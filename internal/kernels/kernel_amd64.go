//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// avx512Kernel is the AVX-512 path: a 12×32 register tile (24 zmm
// accumulators), with a 12×16 variant for tiles at most 16 columns wide.
var avx512Kernel = &microKernel{
	name: "avx512",
	mr:   12, nr: 32,
	mc: 240, kc: 256, nc: 2048,
	directBMaxTiles: 32,
	fn:              kernelAVX512,
	packT:           packBTAVX512,
}

// avx2Kernel is the AVX2+FMA path: a 6×16 register tile (12 ymm
// accumulators).
var avx2Kernel = &microKernel{
	name: "avx2",
	mr:   6, nr: 16,
	mc: 120, kc: 256, nc: 2048,
	directBMaxTiles: 64,
	fn:              kernelAVX2,
}

// hasAVX512 reports whether the CPU and OS support the AVX-512 kernel.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasBMI2

// hasAVX2 reports whether the CPU and OS support the AVX2 kernel.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// bestKernel is the micro-kernel Sgemm uses when Options does not force one.
var bestKernel = func() *microKernel {
	if hasAVX512 {
		return avx512Kernel
	}
	if hasAVX2 {
		return avx2Kernel
	}
	return genericKernel
}()

// supportedKernels lists every micro-kernel this build can run on this CPU.
func supportedKernels() []*microKernel {
	ks := []*microKernel{genericKernel}
	if hasAVX2 {
		ks = append(ks, avx2Kernel)
	}
	if hasAVX512 {
		ks = append(ks, avx512Kernel)
	}
	return ks
}

// kernelAVX512 adapts the AVX-512 assembly kernels to kernelFunc. The index
// expressions check that every element the assembly reads or writes lies
// inside the slices.
func kernelAVX512(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32) {
	_ = a[(m+11)/12*12*rsa-rsa+(k-1)*csa]
	_ = c[(m-1)*ldc+n-1]
	if n <= 16 {
		_ = b[(k-1)*ldb+15]
		sgemmKernel12x16(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, m, n, alpha, beta)
		return
	}
	_ = b[(k-1)*ldb+31]
	sgemmKernel12x32(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, m, n, alpha, beta)
}

//go:noescape
func sgemmKernel12x32(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m, n int, alpha, beta float32)

//go:noescape
func sgemmKernel12x16(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m, n int, alpha, beta float32)

// kernelAVX2 adapts the AVX2 assembly kernel to kernelFunc.
func kernelAVX2(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32) {
	for i := 0; i < m; i += 6 {
		tileAVX2(k, a[i*rsa:], rsa, csa, b, ldb, c[i*ldc:], ldc, min(6, m-i), n, alpha, beta)
	}
}

// tileAVX2 computes one 6×16 tile for kernelAVX2; m ≤ 6. Tiles narrower than
// 16 columns are computed into a scratch tile and then merged into C.
func tileAVX2(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32) {
	_ = a[5*rsa+(k-1)*csa]
	_ = b[(k-1)*ldb+15]
	if n < 16 {
		var t [6 * 16]float32
		sgemmKernel6x16(k, &a[0], rsa, csa, &b[0], ldb, &t[0], 16, m, 1, 0)
		storeTile(t[:], 16, m, n, c, ldc, alpha, beta)
		return
	}
	_ = c[(m-1)*ldc+15]
	sgemmKernel6x16(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, m, alpha, beta)
}

//go:noescape
func sgemmKernel6x16(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m int, alpha, beta float32)

// packBTAVX512 is the packTFunc of the AVX-512 kernel (nr = 32).
func packBTAVX512(dst, b []float32, ldb, kb, cols int) {
	if 31*ldb >= 1<<31 {
		packBT(dst, b, ldb, kb, cols, 32)
		return
	}
	_ = dst[32*kb-1]
	_ = b[(cols-1)*ldb+kb-1]
	packBT32AVX512(&dst[0], &b[0], ldb, kb, cols)
}

//go:noescape
func packBT32AVX512(dst, b *float32, ldb, kb, cols int)
