package svd

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// float32Tol is the relative difference allowed between a factorization
// computed from float32 products and the float64 one of the same matrix and
// seed: float32 rounding (about 6e-8 per operation, growing like √n over
// the inner dimension) through a few products and QR steps.
const float32Tol = 1e-4

// to32 returns the elements of d in row-major float32.
func to32(d *mat.Dense) []float32 {
	m, n := d.Dims()
	out := make([]float32, 0, m*n)
	for i := range m {
		for _, v := range d.RawRowView(i) {
			out = append(out, float32(v))
		}
	}
	return out
}

// TestFactorizeFloat32MatchesFloat64 checks, on non-square shapes of both
// orientations and for every method and target, that the float32 path keeps
// the float64 path's error and energy.
func TestFactorizeFloat32MatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		m, n int
		opt  Options
	}{
		{name: "randomized rank tall", m: 300, n: 120, opt: Options{Method: Randomized, Rank: 20, Seed: 5}},
		{name: "randomized rank wide", m: 120, n: 300, opt: Options{Method: Randomized, Rank: 20, Seed: 5}},
		{name: "randomized energy", m: 200, n: 150, opt: Options{Method: Randomized, Energy: 0.9, Seed: 5}},
		{name: "randomized fallback", m: 40, n: 30, opt: Options{Method: Randomized, Rank: 25, Seed: 5}},
		{name: "exact rank", m: 90, n: 60, opt: Options{Rank: 10}},
		{name: "one thread", m: 257, n: 129, opt: Options{Method: Randomized, Rank: 16, Seed: 9, Threads: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := withSpectrum(rng, tc.m, tc.n, decaying(min(tc.m, tc.n), 0.93))
			a32 := to32(a)
			a64 := mat.NewDense(tc.m, tc.n, nil)
			for k, v := range a32 {
				a64.Set(k/tc.n, k%tc.n, float64(v))
			}
			want := mustFactorize(t, a64, tc.opt)
			got, err := FactorizeFloat32(a32, tc.m, tc.n, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			checkShapes(t, got, tc.m, tc.n, want.Rank)
			if got.Method != want.Method {
				t.Errorf("method %v, want %v", got.Method, want.Method)
			}
			eGot, eWant := mustRelativeError(t, a64, got), mustRelativeError(t, a64, want)
			if math.Abs(eGot-eWant) > float32Tol*eWant {
				t.Errorf("relative error %v, float64 path %v", eGot, eWant)
			}
			if d := math.Abs(got.EnergyFraction() - want.EnergyFraction()); d > float32Tol {
				t.Errorf("energy fraction %v, float64 path %v", got.EnergyFraction(), want.EnergyFraction())
			}
			if d := math.Abs(eGot*eGot - (1 - got.EnergyFraction())); d > float32Tol {
				t.Errorf("residual² %v, 1 − energy fraction %v", eGot*eGot, 1-got.EnergyFraction())
			}
		})
	}
}

// TestFactorizeFloat32Invalid checks the errors for malformed input.
func TestFactorizeFloat32Invalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    []float32
		m, n int
		want string
	}{
		{name: "empty", a: nil, m: 0, n: 3, want: "empty"},
		{name: "short", a: make([]float32, 5), m: 2, n: 3, want: "5 values"},
		{name: "nan", a: []float32{1, 2, float32(math.NaN()), 4}, m: 2, n: 2, want: "element (1, 0)"},
		{name: "inf", a: []float32{1, float32(math.Inf(1)), 3, 4}, m: 2, n: 2, want: "element (0, 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FactorizeFloat32(tc.a, tc.m, tc.n, Options{Method: Randomized, Rank: 1})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestCholQR2 checks the fast orthonormalization of the float32 path: on a
// well-conditioned tall matrix it succeeds, and the result is orthonormal
// and spans the same columns (Q·QᵀY = Y); on a rank-deficient one it
// declines and leaves the matrix unchanged, so that the Householder QR runs.
func TestCholQR2(t *testing.T) {
	// spanTol bounds ‖Y − Q·QᵀY‖/‖Y‖ for float32 products.
	const spanTol = 1e-5
	rng := rand.New(rand.NewPCG(11, 12))
	deficient := gaussian(rng, 300, 20)
	for i := range 300 {
		deficient.Set(i, 19, deficient.At(i, 3))
	}
	for _, tc := range []struct {
		name string
		y    *mat.Dense
		ok   bool
	}{
		{name: "gaussian 500×40", y: gaussian(rng, 500, 40), ok: true},
		{name: "graded 400×30", y: withSpectrum(rng, 400, 30, decaying(30, 0.8)), ok: true},
		{name: "rank deficient", y: deficient, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := mat.DenseCopyOf(tc.y)
			op := &float32Op{threads: 1}
			if got := op.cholQR2(y); got != tc.ok {
				t.Fatalf("cholQR2 = %v, want %v", got, tc.ok)
			}
			if !tc.ok {
				if !mat.Equal(y, tc.y) {
					t.Error("declined, but changed the matrix")
				}
				return
			}
			_, l := y.Dims()
			var g mat.Dense
			g.Mul(y.T(), y)
			if !mat.EqualApprox(&g, eye(l), orthoTol) {
				t.Error("QᵀQ is not the identity")
			}
			var proj, back mat.Dense
			proj.Mul(y.T(), tc.y)
			back.Mul(y, &proj)
			back.Sub(&back, tc.y)
			if e := mat.Norm(&back, 2) / mat.Norm(tc.y, 2); e > spanTol {
				t.Errorf("‖Y − QQᵀY‖/‖Y‖ = %v", e)
			}
		})
	}
}

// eye returns the n×n identity.
func eye(n int) *mat.Dense {
	d := mat.NewDense(n, n, nil)
	for i := range n {
		d.Set(i, i, 1)
	}
	return d
}
