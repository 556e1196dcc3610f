package refit

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func gaussian(rng *rand.Rand, m, n int) *mat.Dense {
	d := mat.NewDense(m, n, nil)
	for i := range m {
		for j := range n {
			d.Set(i, j, rng.NormFloat64())
		}
	}
	return d
}

func TestSolveBMatchesLeastSquares(t *testing.T) {
	// tol covers float64 rounding of the normal equations against a QR
	// least-squares solve on well-conditioned random data.
	const tol = 1e-8
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		m, n, r, samples int
		base             bool
	}{
		{5, 7, 2, 40, true},
		{8, 4, 3, 30, false},
		{6, 6, 6, 50, true},
	} {
		t.Run("", func(t *testing.T) {
			w := gaussian(rng, tc.m, tc.n)
			a := gaussian(rng, tc.r, tc.n)
			x := gaussian(rng, tc.samples, tc.n)
			xs := gaussian(rng, tc.samples, tc.n) // the student's inputs: x plus noise
			xs.Scale(0.3, xs)
			xs.Add(xs, x)
			var base *mat.Dense
			if tc.base {
				base = gaussian(rng, tc.m, tc.n)
			}
			var g mat.SymDense
			g.SymOuterK(1, xs.T())
			var cross mat.Dense
			cross.Mul(xs.T(), x)
			got, err := SolveB(w, base, a, &cross, &g, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Reference: min ‖Z·Bᵀ − T‖ with Z = X̃·Aᵀ, T = X·Wᵀ − X̃·Wbᵀ.
			var z, target mat.Dense
			z.Mul(xs, a.T())
			target.Mul(x, w.T())
			if base != nil {
				var xb mat.Dense
				xb.Mul(xs, base.T())
				target.Sub(&target, &xb)
			}
			var bt mat.Dense
			if err := bt.Solve(&z, &target); err != nil {
				t.Fatal(err)
			}
			var d mat.Dense
			d.Sub(got, bt.T())
			if e := mat.Norm(&d, 2) / mat.Norm(&bt, 2); e > tol {
				t.Errorf("relative difference from least squares %g", e)
			}
		})
	}
}

func TestSolveBRejectsBadShapes(t *testing.T) {
	w := mat.NewDense(3, 4, nil)
	a := mat.NewDense(2, 4, nil)
	g := mat.NewSymDense(4, nil)
	for name, tc := range map[string]struct {
		a     *mat.Dense
		cross *mat.Dense
	}{
		"A columns":  {mat.NewDense(2, 3, nil), mat.NewDense(4, 4, nil)},
		"cross size": {a, mat.NewDense(3, 4, nil)},
		"no data":    {a, mat.NewDense(4, 4, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := SolveB(w, nil, tc.a, tc.cross, g, 0); err == nil {
				t.Error("no error")
			}
		})
	}
}
