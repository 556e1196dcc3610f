package svd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Factorize returns the balanced truncated SVD factors of the m×n matrix a
// as configured by opt. The rank is opt.Rank clamped to min(m, n), or the
// smallest rank meeting opt.Energy.
//
// With the randomized method and a fixed rank r, a sketch of r+p columns
// (p = oversampling) is used; when r+p ≥ min(m, n) the sketch would not be
// cheaper and the exact method is used instead.
//
// With the randomized method and an energy target E < 1, the energy is
// measured against the exactly known ‖a‖_F², so the target is guaranteed:
// ‖a − B·A‖_F² ≤ (1−E)·‖a‖_F² up to rounding. The sketch grows adaptively,
// starting from 32+p columns and doubling the candidate rank k until the
// target is met by at most k values of a (k+p)-column sketch; once k+p
// reaches min(m, n) the exact method is used. E = 1 always uses the exact
// method. The chosen rank can exceed the exact method's by a few.
//
// Factorize returns an error for invalid options, an empty matrix, or
// non-finite input.
func Factorize(a mat.Matrix, opt Options) (*Factors, error) {
	p, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errors.New("svd: nil matrix")
	}
	m, n := a.Dims()
	if m <= 0 || n <= 0 {
		return nil, fmt.Errorf("svd: empty %d×%d matrix", m, n)
	}
	d := denseOf(a)
	total, err := squaredNorm(d)
	if err != nil {
		return nil, err
	}
	if p.energy > 0 && total == 0 {
		return &Factors{S: []float64{}, Method: p.method}, nil
	}
	if p.method == Randomized {
		return factorizeRandomized(denseOp{d}, total, p)
	}
	return factorizeExact(d, total, p)
}

// factorizeExact computes the full thin SVD and truncates it.
func factorizeExact(d *mat.Dense, total float64, p params) (*Factors, error) {
	t, err := exactSVD(d)
	if err != nil {
		return nil, err
	}
	r := min(p.rank, len(t.s))
	if p.energy > 0 {
		r = RankForEnergy(t.s, total, p.energy)
	}
	return balanced(t, r, total, Exact), nil
}

// Truncations returns, for each r of ranks, the factors Factorize(a,
// Options{Rank: r}) returns (exact SVD, balanced), from one SVD of a.
func Truncations(a *mat.Dense, ranks []int) ([]*Factors, error) {
	total, err := squaredNorm(a)
	if err != nil {
		return nil, err
	}
	t, err := exactSVD(a)
	if err != nil {
		return nil, err
	}
	out := make([]*Factors, len(ranks))
	for k, r := range ranks {
		out[k] = balanced(t, max(0, min(r, len(t.s))), total, Exact)
	}
	return out, nil
}

// denseOf returns a as a *mat.Dense, copying only when a is not one.
func denseOf(a mat.Matrix) *mat.Dense {
	if d, ok := a.(*mat.Dense); ok {
		return d
	}
	return mat.DenseCopyOf(a)
}

// squaredNorm returns ‖d‖_F², or an error locating the first non-finite
// element.
func squaredNorm(d *mat.Dense) (float64, error) {
	m, _ := d.Dims()
	var sum float64
	for i := range m {
		for _, v := range d.RawRowView(i) {
			sum += v * v
		}
	}
	if !math.IsNaN(sum) && !math.IsInf(sum, 0) {
		return sum, nil
	}
	for i := range m {
		for j, v := range d.RawRowView(i) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("svd: element (%d, %d) is %v", i, j, v)
			}
		}
	}
	return 0, errors.New("svd: squared Frobenius norm overflows float64")
}
