package svd

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Rebalance returns factors with the same product b·a (m×r times r×n) and
// equal scale: b′ = U·√Σ, a′ = √Σ·Vᵀ from the SVD U·Σ·Vᵀ of b·a, so that
// b′ᵀb′ = a′a′ᵀ = Σ. It works through the QR factorisations b = Q_b·R_b and
// aᵀ = Q_a·R_a and the SVD of the r×r matrix R_b·R_aᵀ, never forming b·a.
func Rebalance(b, a *mat.Dense) (*mat.Dense, *mat.Dense, error) {
	m, r := b.Dims()
	r2, n := a.Dims()
	if r != r2 {
		return nil, nil, errors.New("svd: factor ranks differ")
	}
	if r == 0 {
		return b, a, nil
	}
	if r > m || r > n {
		return nil, nil, errors.New("svd: rank exceeds a matrix dimension")
	}
	var qb, qa mat.QR
	qb.Factorize(b)
	qa.Factorize(a.T())
	var rb, ra, qbm, qam mat.Dense
	qb.RTo(&rb)
	qa.RTo(&ra)
	qb.QTo(&qbm)
	qa.QTo(&qam)
	rbr := rb.Slice(0, r, 0, r)
	rar := ra.Slice(0, r, 0, r)
	var core mat.Dense
	core.Mul(rbr, rar.T())
	t, err := exactSVD(&core)
	if err != nil {
		return nil, nil, err
	}
	root := make([]float64, r)
	for i, s := range t.s {
		root[i] = math.Sqrt(s)
	}
	var u, v mat.Dense
	u.Mul(qbm.Slice(0, m, 0, r), t.u)
	v.Mul(qam.Slice(0, n, 0, r), t.v)
	nb := mat.NewDense(m, r, nil)
	na := mat.NewDense(r, n, nil)
	for i := range m {
		for j := range r {
			nb.Set(i, j, u.At(i, j)*root[j])
		}
	}
	for j := range r {
		for c := range n {
			na.Set(j, c, root[j]*v.At(c, j))
		}
	}
	return nb, na, nil
}
