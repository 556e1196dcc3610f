package svd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// residualTol bounds the difference between the blocked and the naive
// residual; both sum O(mn) rounded terms in a different order.
const residualTol = 1e-12

func TestRelativeErrorMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ m, n, r int }{
		{m: 7, n: 3, r: 2},
		{m: 3, n: 11, r: 3},
		{m: residualBlockRows + 45, n: 17, r: 5}, // several row blocks, short last one
		{m: 2*residualBlockRows + 1, n: 9, r: 1},
	} {
		t.Run(fmt.Sprintf("%dx%d r%d", tc.m, tc.n, tc.r), func(t *testing.T) {
			a := gaussian(rng, tc.m, tc.n)
			f := &Factors{B: gaussian(rng, tc.m, tc.r), A: gaussian(rng, tc.r, tc.n), Rank: tc.r}
			got := mustRelativeError(t, a, f)
			want := naiveRelativeError(a, f)
			if math.Abs(got-want) > residualTol*want {
				t.Errorf("%d×%d rank %d: RelativeError = %v, naive %v", tc.m, tc.n, tc.r, got, want)
			}
			zero := &Factors{S: []float64{}}
			if got := mustRelativeError(t, a, zero); math.Abs(got-1) > residualTol {
				t.Errorf("%d×%d rank 0: RelativeError = %v, want 1", tc.m, tc.n, got)
			}
		})
	}
}

func TestRelativeErrorZeroMatrix(t *testing.T) {
	a := mat.NewDense(3, 4, nil)
	if got := mustRelativeError(t, a, &Factors{}); got != 0 {
		t.Errorf("zero matrix, zero factors: %v, want 0", got)
	}
	f := &Factors{B: mat.NewDense(3, 1, []float64{1, 0, 0}), A: mat.NewDense(1, 4, []float64{0, 1, 0, 0}), Rank: 1}
	if got := mustRelativeError(t, a, f); !math.IsInf(got, 1) {
		t.Errorf("zero matrix, non-zero factors: %v, want +Inf", got)
	}
}

func TestRelativeErrorShapeMismatch(t *testing.T) {
	a := mat.NewDense(3, 4, nil)
	for _, tc := range []struct {
		name string
		f    *Factors
	}{
		{name: "nil factors", f: nil},
		{name: "missing B", f: &Factors{A: mat.NewDense(1, 4, nil), Rank: 1}},
		{name: "wrong rows", f: &Factors{B: mat.NewDense(2, 1, nil), A: mat.NewDense(1, 4, nil), Rank: 1}},
		{name: "wrong cols", f: &Factors{B: mat.NewDense(3, 1, nil), A: mat.NewDense(1, 5, nil), Rank: 1}},
		{name: "wrong rank", f: &Factors{B: mat.NewDense(3, 2, nil), A: mat.NewDense(2, 4, nil), Rank: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := RelativeError(a, tc.f); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		})
	}
}
