package kernels

// vector computes a product whose C is a single row (m == 1) or a single
// column (n == 1) with dot products or axpys over contiguous vectors. The
// register-tiled path would pad such a product to a full mr×nr tile and, for
// a transposed B, pack all of B for one use.
func (g *gemm) vector() {
	if g.m == 1 {
		// C(0, j) = alpha·Σ_p A(0, p)·B(p, j) + beta·C(0, j).
		x, buf := gatherVector(g.a, g.csa, g.k)
		defer buf.release()
		row := g.c[:g.n]
		if g.csb == 1 {
			// Rows of B are contiguous: accumulate alpha·A(0, p)·B(p, :).
			scaleBeta(g.beta, row)
			for p, v := range x {
				axpy(g.alpha*v, g.b[p*g.rsb:p*g.rsb+g.n], row)
			}
			return
		}
		// Columns of B are contiguous (rsb == 1).
		for j := range row {
			row[j] = g.combine(dot(x, g.b[j*g.csb:j*g.csb+g.k]), row[j])
		}
		return
	}
	// n == 1: C(i, 0) = alpha·Σ_p A(i, p)·B(p, 0) + beta·C(i, 0).
	y, buf := gatherVector(g.b, g.rsb, g.k)
	defer buf.release()
	if g.csa == 1 {
		// Rows of A are contiguous.
		for i := range g.m {
			g.c[i*g.ldc] = g.combine(dot(g.a[i*g.rsa:i*g.rsa+g.k], y), g.c[i*g.ldc])
		}
		return
	}
	// Columns of A are contiguous (rsa == 1): accumulate B(p, 0)·A(:, p).
	t := getBuffer(g.m)
	defer t.release()
	col := t.s
	clear(col)
	for p, v := range y {
		axpy(v, g.a[p*g.csa:p*g.csa+g.m], col)
	}
	for i, v := range col {
		g.c[i*g.ldc] = g.combine(v, g.c[i*g.ldc])
	}
}

// combine returns alpha·t + beta·c, ignoring c when beta is zero.
func (g *gemm) combine(t, c float32) float32 {
	if g.beta == 0 {
		return g.alpha * t
	}
	return g.alpha*t + g.beta*c
}

// scaleBeta sets x = beta·x, writing zeros when beta is zero.
func scaleBeta(beta float32, x []float32) {
	switch beta {
	case 0:
		clear(x)
	case 1:
	default:
		scale(beta, x)
	}
}

// gatherVector returns the n elements s[0], s[inc], s[2·inc], … as a
// contiguous slice: s itself when inc is 1, otherwise a copy in a pooled
// buffer, which the caller releases (release of a nil buffer is a no-op).
func gatherVector(s []float32, inc, n int) ([]float32, *buffer) {
	if inc == 1 {
		return s[:n], nil
	}
	buf := getBuffer(n)
	for i := range buf.s {
		buf.s[i] = s[i*inc]
	}
	return buf.s, buf
}
