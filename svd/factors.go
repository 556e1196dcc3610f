package svd

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// Factors is a balanced rank-r factorisation B·A of an m×n matrix M.
type Factors struct {
	// B is U_r·√Σ_r (m×r). It is nil when Rank is zero.
	B *mat.Dense
	// A is √Σ_r·V_rᵀ (r×n). It is nil when Rank is zero.
	A *mat.Dense
	// S holds the r kept singular values in non-increasing order. For the
	// randomized method they are those of the projected matrix, which never
	// exceed the true ones.
	S []float64
	// Rank is r. It is zero only for an all-zero matrix with an energy
	// target, whose best approximation is the zero matrix.
	Rank int
	// TotalEnergy is ‖M‖_F², the sum of all squared singular values.
	TotalEnergy float64
	// Method is the algorithm that produced the factors. It is Exact when the
	// randomized method fell back to the exact one.
	Method Method
}

// EnergyFraction returns the fraction of ‖M‖_F² kept by the factors,
// Σ S[i]² / TotalEnergy, or 1 when M is zero. By the orthogonality of the
// factorisation, ‖M − B·A‖_F² = (1 − EnergyFraction)·‖M‖_F² up to rounding,
// for both methods.
func (f *Factors) EnergyFraction() float64 {
	if f.TotalEnergy == 0 {
		return 1
	}
	var kept float64
	for _, v := range f.S {
		kept += v * v
	}
	return kept / f.TotalEnergy
}

// thinSVD holds the leading singular triplets of a matrix: u is m×l, v is
// n×l and s has length l, in non-increasing order.
type thinSVD struct {
	u, v *mat.Dense
	s    []float64
}

// balanced returns the balanced factors of the first r triplets of t.
func balanced(t thinSVD, r int, total float64, method Method) *Factors {
	f := &Factors{
		S:           append([]float64(nil), t.s[:r]...),
		Rank:        r,
		TotalEnergy: total,
		Method:      method,
	}
	if r == 0 {
		return f
	}
	m, _ := t.u.Dims()
	n, _ := t.v.Dims()
	root := make([]float64, r)
	for j, v := range f.S {
		root[j] = math.Sqrt(v)
	}
	b := mat.NewDense(m, r, nil)
	for i := range m {
		row := b.RawRowView(i)
		for j := range r {
			row[j] = t.u.At(i, j) * root[j]
		}
	}
	a := mat.NewDense(r, n, nil)
	for j := range r {
		row := a.RawRowView(j)
		for c := range n {
			row[c] = root[j] * t.v.At(c, j)
		}
	}
	f.B, f.A = b, a
	return f
}
