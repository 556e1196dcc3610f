package kernels

// kernelGeneric4x4 is the portable micro-kernel with a 4×4 register tile.
// See kernelFunc.
func kernelGeneric4x4(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32) {
	for i := 0; i < m; i += 4 {
		tileGeneric4x4(k, a[i*rsa:], rsa, csa, b, ldb, c[i*ldc:], ldc, min(4, m-i), n, alpha, beta)
	}
}

// tileGeneric4x4 computes one 4×4 tile for kernelGeneric4x4; m ≤ 4.
func tileGeneric4x4(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc, m, n int, alpha, beta float32) {
	var (
		c00, c01, c02, c03 float32
		c10, c11, c12, c13 float32
		c20, c21, c22, c23 float32
		c30, c31, c32, c33 float32
	)
	b = b[:(k-1)*ldb+4]
	if csa == 1 {
		// Rows of A are contiguous (A not transposed).
		r0, r1, r2, r3 := a[:k], a[rsa:rsa+k], a[2*rsa:2*rsa+k], a[3*rsa:3*rsa+k]
		for p := range r0 {
			a0, a1, a2, a3 := r0[p], r1[p], r2[p], r3[p]
			bp := b[p*ldb : p*ldb+4 : p*ldb+4]
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
	} else {
		for p := range k {
			o := p * csa
			ap := a[o : o+3*rsa+1]
			a0, a1, a2, a3 := ap[0], ap[rsa], ap[2*rsa], ap[3*rsa]
			bp := b[p*ldb : p*ldb+4 : p*ldb+4]
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
	}
	t := [16]float32{
		c00, c01, c02, c03,
		c10, c11, c12, c13,
		c20, c21, c22, c23,
		c30, c31, c32, c33,
	}
	storeTile(t[:], 4, m, n, c, ldc, alpha, beta)
}

// storeTile writes C(i, j) = alpha·T(i, j) + beta·C(i, j) for i < m, j < n,
// where T(i, j) = t[i*ldt + j]; beta == 0 overwrites C without reading it.
func storeTile(t []float32, ldt, m, n int, c []float32, ldc int, alpha, beta float32) {
	for i := range m {
		src := t[i*ldt : i*ldt+n]
		dst := c[i*ldc : i*ldc+n]
		if beta == 0 {
			for j, v := range src {
				dst[j] = alpha * v
			}
			continue
		}
		for j, v := range src {
			dst[j] = alpha*v + beta*dst[j]
		}
	}
}
