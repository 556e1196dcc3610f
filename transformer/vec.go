package transformer

// The loops below run eight lanes at a time in assembly where AVX2 and FMA
// are available (vec_amd64.s) and finish the remainder, or everything on
// other machines, with the scalar code. Both use the same exponential
// (expf), so the two paths agree to a few ulp.

// vecBlock returns how many leading elements of an n-element loop the
// vector code handles.
func vecBlock(n int) int {
	if !haveAVX2 {
		return 0
	}
	return n &^ 7
}

// expSubSum sets x[i] = e**(x[i]−c) and returns Σ x[i].
func expSubSum(x []float32, c float32) float32 {
	var s float32
	k := vecBlock(len(x))
	if k > 0 {
		s = expSubSumAVX2(&x[0], k, c)
	}
	for i := k; i < len(x); i++ {
		e := expf(x[i] - c)
		x[i] = e
		s += e
	}
	return s
}

// maxOf returns the largest element of the non-empty x.
func maxOf(x []float32) float32 {
	k := vecBlock(len(x))
	m := x[0]
	if k > 0 {
		m = maxAVX2(&x[0], k)
	}
	for _, v := range x[k:] {
		m = max(m, v)
	}
	return m
}

// siluMul sets out[i] = silu(g[i])·u[i].
func siluMul(g, u, out []float32) {
	n := len(g)
	u, out = u[:n], out[:n]
	k := vecBlock(n)
	if k > 0 {
		siluMulAVX2(&g[0], &u[0], &out[0], k)
	}
	for i := k; i < n; i++ {
		x := g[i]
		out[i] = x / (1 + expf(-x)) * u[i]
	}
}

// softmaxGrad recomputes probabilities p[i] = e**(p[i]−l) from scores and
// turns dp into the score gradient p[i]·(dp[i]−ds).
func softmaxGrad(p, dp []float32, l, ds float32) {
	n := len(p)
	dp = dp[:n]
	k := vecBlock(n)
	if k > 0 {
		softmaxGradAVX2(&p[0], &dp[0], k, l, ds)
	}
	for i := k; i < n; i++ {
		e := expf(p[i] - l)
		p[i] = e
		dp[i] = e * (dp[i] - ds)
	}
}

// siluMulGrad computes, for out = silu(g)·u, the gradients dg and du from
// da = ∂L/∂out.
func siluMulGrad(g, u, da, dg, du []float32) {
	n := len(g)
	u, da, dg, du = u[:n], da[:n], dg[:n], du[:n]
	k := vecBlock(n)
	if k > 0 {
		siluMulGradAVX2(&g[0], &u[0], &da[0], &dg[0], &du[0], k)
	}
	for i := k; i < n; i++ {
		x := g[i]
		s := sigmoidf(x)
		dg[i] = da[i] * u[i] * s * (1 + x*(1-s))
		du[i] = da[i] * x * s
	}
}

// sumSquares returns Σ x[i]², from float32 partial sums.
func sumSquares(x []float32) float64 {
	var s float64
	k := vecBlock(len(x))
	if k > 0 {
		s = float64(sumSquaresAVX2(&x[0], k))
	}
	for _, v := range x[k:] {
		s += float64(v) * float64(v)
	}
	return s
}

// scaleMul sets y[i] = w[i]·(x[i]·r), the operation order of an RMSNorm.
func scaleMul(x, w, y []float32, r float32) {
	n := len(x)
	w, y = w[:n], y[:n]
	k := vecBlock(n)
	if k > 0 {
		scaleMulAVX2(&x[0], &w[0], &y[0], k, r)
	}
	for i := k; i < n; i++ {
		y[i] = w[i] * (x[i] * r)
	}
}
