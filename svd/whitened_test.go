package svd

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// activationError returns ‖(w − b·a)·xᵀ‖_F², the output error on the
// samples in the rows of x.
func activationError(w, b, a, x *mat.Dense) float64 {
	var d mat.Dense
	d.Mul(b, a)
	d.Sub(w, &d)
	var e mat.Dense
	e.Mul(&d, x.T())
	return mat.Norm(&e, 2) * mat.Norm(&e, 2)
}

// alsReference minimises ‖(w − B·A)·xᵀ‖_F² over rank-r B, A by alternating
// least squares from a random start: the brute-force reference for the
// closed form. Rank-constrained least squares has no spurious local minima,
// so enough sweeps reach the optimum.
func alsReference(rng *rand.Rand, w, x *mat.Dense, r, sweeps int) float64 {
	m, n := w.Dims()
	var g mat.Dense
	g.Mul(x.T(), x) // n×n
	var wg mat.Dense
	wg.Mul(w, &g) // m×n
	a := gaussian(rng, r, n)
	b := mat.NewDense(m, r, nil)
	for range sweeps {
		// B = W G Aᵀ (A G Aᵀ)⁻¹
		var agat, ag mat.Dense
		ag.Mul(a, &g)
		agat.Mul(&ag, a.T())
		var rhs mat.Dense
		rhs.Mul(&wg, a.T())
		var inv mat.Dense
		if err := inv.Inverse(&agat); err != nil {
			panic(err)
		}
		b.Mul(&rhs, &inv)
		// A = (BᵀB)⁻¹ Bᵀ W  (the G-weighted problem separates per column
		// of the whitened space, so the unweighted normal equations hold)
		var btb, btw mat.Dense
		btb.Mul(b.T(), b)
		btw.Mul(b.T(), w)
		if err := inv.Inverse(&btb); err != nil {
			panic(err)
		}
		a.Mul(&inv, &btw)
	}
	return activationError(w, b, a, x)
}

func TestWhitenedMinimisesActivationError(t *testing.T) {
	// damping is negligible against the data's Gram, so the damped and the
	// exact objectives agree to well within tol.
	const damping = 1e-12
	// tol is relative: the ALS reference converges linearly, and 400 sweeps
	// bring it within ~1e-9 of the optimum on these sizes.
	const tol = 1e-6
	for _, tc := range []struct{ m, n, samples, r int }{
		{9, 7, 40, 3},
		{6, 11, 50, 2},
		{12, 12, 30, 5},
	} {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.m), uint64(tc.r)))
			w := gaussian(rng, tc.m, tc.n)
			// Anisotropic inputs: column scales spread over two decades.
			x := gaussian(rng, tc.samples, tc.n)
			for j := range tc.n {
				s := math.Pow(10, 2*float64(j)/float64(tc.n)-1)
				for i := range tc.samples {
					x.Set(i, j, x.At(i, j)*s)
				}
			}
			var g mat.SymDense
			g.SymOuterK(1, x.T())
			f, err := Whitened(w, &g, tc.r, damping)
			if err != nil {
				t.Fatal(err)
			}
			got := activationError(w, f.B, f.A, x)
			want := alsReference(rng, w, x, tc.r, 400)
			if got > want*(1+tol) {
				t.Errorf("activation error %g, ALS optimum %g", got, want)
			}
			plain, err := Factorize(w, Options{Rank: tc.r})
			if err != nil {
				t.Fatal(err)
			}
			if p := activationError(w, plain.B, plain.A, x); got > p*(1+tol) {
				t.Errorf("whitened error %g above the plain SVD's %g", got, p)
			}
			var tail float64
			for _, s := range mustSpectrum(t, w, &g, damping)[tc.r:] {
				tail += s * s
			}
			if math.Abs(got-tail) > tol*tail {
				t.Errorf("activation error %g, spectrum tail %g", got, tail)
			}
		})
	}
}

func mustSpectrum(t *testing.T, w *mat.Dense, g mat.Symmetric, damping float64) []float64 {
	t.Helper()
	wh, err := NewWhitener(g, damping)
	if err != nil {
		t.Fatal(err)
	}
	s, err := wh.Spectrum(w)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWhitenedFactorsAreBalanced(t *testing.T) {
	// tol covers float64 rounding of two SVDs and a few products.
	const tol = 1e-9
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, r := 10, 8, 4
	w := gaussian(rng, m, n)
	x := gaussian(rng, 50, n)
	for i := range 50 { // one input direction 1000× larger than the rest
		x.Set(i, 0, 1000*x.At(i, 0))
	}
	var g mat.SymDense
	g.SymOuterK(1, x.T())
	f, err := Whitened(w, &g, r, DefaultDamping)
	if err != nil {
		t.Fatal(err)
	}
	// The unbalanced product U_r Σ_r V_rᵀ L⁻¹ must equal B·A exactly.
	wh, err := NewWhitener(&g, DefaultDamping)
	if err != nil {
		t.Fatal(err)
	}
	var dl mat.Dense
	dl.Mul(w, wh.L)
	ts, err := exactSVD(&dl)
	if err != nil {
		t.Fatal(err)
	}
	var us, want mat.Dense
	us.Mul(ts.u.Slice(0, m, 0, r), mat.NewDiagDense(r, ts.s[:r]))
	want.Mul(&us, ts.v.Slice(0, n, 0, r).T())
	want.Mul(&want, wh.LInv)
	var got mat.Dense
	got.Mul(f.B, f.A)
	if d := maxAbsDiff(&got, &want); d > tol*mat.Norm(&want, 2) {
		t.Errorf("B·A differs from the whitened truncation by %g", d)
	}
	// Balanced: BᵀB = AAᵀ = diag(Σ′).
	var btb, aat mat.Dense
	btb.Mul(f.B.T(), f.B)
	aat.Mul(f.A, f.A.T())
	if d := maxAbsDiff(&btb, &aat); d > tol*mat.Norm(&btb, 2) {
		t.Errorf("BᵀB and A·Aᵀ differ by %g", d)
	}
	for i := range r {
		for j := range r {
			if i != j && math.Abs(btb.At(i, j)) > tol*mat.Norm(&btb, 2) {
				t.Errorf("BᵀB(%d,%d) = %g, want 0", i, j, btb.At(i, j))
			}
		}
	}
}

func TestWhitenedRejectsBadInput(t *testing.T) {
	w := mat.NewDense(2, 3, []float64{1, 2, 3, 4, 5, 6})
	for name, g := range map[string]*mat.SymDense{
		"wrong size": mat.NewSymDense(2, []float64{1, 0, 0, 1}),
		"zero gram":  mat.NewSymDense(3, nil),
		"nan gram":   mat.NewSymDense(3, []float64{math.NaN(), 0, 0, 0, 1, 0, 0, 0, 1}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Whitened(w, g, 1, DefaultDamping); err == nil {
				t.Error("no error")
			}
		})
	}
}

func maxAbsDiff(a, b *mat.Dense) float64 {
	var d mat.Dense
	d.Sub(a, b)
	return mat.Norm(&d, math.Inf(1))
}

func TestRebalanceKeepsTheProduct(t *testing.T) {
	// tol covers float64 rounding of two QRs and an SVD.
	const tol = 1e-10
	rng := rand.New(rand.NewPCG(8, 9))
	for _, tc := range []struct{ m, n, r int }{{7, 5, 3}, {4, 9, 4}, {6, 6, 1}} {
		t.Run("", func(t *testing.T) {
			b := gaussian(rng, tc.m, tc.r)
			a := gaussian(rng, tc.r, tc.n)
			b.Scale(300, b) // badly scaled: B carries the scale
			a.Scale(1.0/300, a)
			nb, na, err := Rebalance(b, a)
			if err != nil {
				t.Fatal(err)
			}
			var want, got mat.Dense
			want.Mul(b, a)
			got.Mul(nb, na)
			if d := maxAbsDiff(&got, &want); d > tol*mat.Norm(&want, 2) {
				t.Errorf("product changed by %g", d)
			}
			if rb, ra := mat.Norm(nb, 2), mat.Norm(na, 2); math.Abs(rb-ra) > tol*rb {
				t.Errorf("‖B‖ = %g, ‖A‖ = %g", rb, ra)
			}
		})
	}
}

// TestTruncationsMatchFactorize checks that the factors of several ranks
// from one SVD equal those of one factorisation per rank, whitened and
// plain, on an odd shape (the same operations on the same input: equal to
// the bit).
func TestTruncationsMatchFactorize(t *testing.T) {
	const m, n = 9, 13
	rng := rand.New(rand.NewPCG(5, 6))
	d := mat.NewDense(m, n, nil)
	x := mat.NewDense(3*n, n, nil)
	for i := range m {
		for j := range n {
			d.Set(i, j, rng.NormFloat64())
		}
	}
	for i := range 3 * n {
		for j := range n {
			x.Set(i, j, rng.NormFloat64()*float64(1+j%4))
		}
	}
	var g mat.SymDense
	g.SymOuterK(1, x.T())
	wh, err := NewWhitener(&g, DefaultDamping)
	if err != nil {
		t.Fatal(err)
	}
	ranks := []int{0, 1, 4, 9, 20}
	wt, err := wh.Truncations(d, ranks)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := Truncations(d, ranks)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range ranks {
		wf, err := wh.Factorize(d, r)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := Factorize(d, Options{Rank: max(r, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if r == 0 {
			pf = &Factors{Rank: 0}
		}
		for _, c := range []struct {
			name      string
			got, want *Factors
		}{{"whitened", wt[k], wf}, {"plain", pt[k], pf}} {
			if c.got.Rank != c.want.Rank {
				t.Fatalf("%s rank %d: got rank %d, want %d", c.name, r, c.got.Rank, c.want.Rank)
			}
			if c.want.Rank == 0 {
				continue
			}
			if !mat.Equal(c.got.B, c.want.B) || !mat.Equal(c.got.A, c.want.A) {
				t.Errorf("%s rank %d: factors differ", c.name, r)
			}
		}
	}
}
