package kernels

// kernelGeneric4x4 is the portable 4×4 micro-kernel. See kernelFunc.
func kernelGeneric4x4(k int, a []float32, rsa, csa int, b []float32, c []float32, ldc, m, n int, beta float32) {
	var (
		c00, c01, c02, c03 float32
		c10, c11, c12, c13 float32
		c20, c21, c22, c23 float32
		c30, c31, c32, c33 float32
	)
	b = b[:4*k]
	for p := 0; p < k; p++ {
		o := p * csa
		a0, a1, a2, a3 := a[o], a[o+rsa], a[o+2*rsa], a[o+3*rsa]
		bp := b[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	t := [16]float32{
		c00, c01, c02, c03,
		c10, c11, c12, c13,
		c20, c21, c22, c23,
		c30, c31, c32, c33,
	}
	storeTile(t[:], 4, m, n, c, ldc, beta)
}

// storeTile writes C(i, j) = T(i, j) + beta*C(i, j) for i < m, j < n, where
// T(i, j) = t[i*ldt + j]; beta == 0 overwrites C without reading it.
func storeTile(t []float32, ldt, m, n int, c []float32, ldc int, beta float32) {
	for i := range m {
		src := t[i*ldt : i*ldt+n]
		dst := c[i*ldc : i*ldc+n]
		if beta == 0 {
			copy(dst, src)
			continue
		}
		for j, v := range src {
			dst[j] = v + beta*dst[j]
		}
	}
}
