package align

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// procrustes returns the orthogonal R (n×n, row-major) maximizing tr(Rᵀ·M)
// for the n×n matrix m, that is Σ⟨R·Xᵢ, Yᵢ⟩ when m = Σ Yᵢ·Xᵢᵀ, and the
// maximum, the sum of m's singular values: with m = U·Σ·Wᵀ, R = U·Wᵀ.
func procrustes(m []float64, n int) ([]float64, float64, error) {
	var f mat.SVD
	if !f.Factorize(mat.NewDense(n, n, append([]float64(nil), m...)), mat.SVDFull) {
		return nil, 0, fmt.Errorf("align: Procrustes SVD did not converge")
	}
	var u, w, r mat.Dense
	f.UTo(&u)
	f.VTo(&w)
	r.Mul(&u, w.T())
	var sum float64
	for _, s := range f.Values(nil) {
		sum += s
	}
	return r.RawMatrix().Data, sum, nil
}

// nuclear returns the sum of the singular values of the n×n matrix m.
func nuclear(m []float64, n int) (float64, error) {
	var f mat.SVD
	if !f.Factorize(mat.NewDense(n, n, append([]float64(nil), m...)), mat.SVDNone) {
		return 0, fmt.Errorf("align: SVD did not converge")
	}
	var sum float64
	for _, s := range f.Values(nil) {
		sum += s
	}
	return sum, nil
}

// rotation2 returns the rotation [[c, −s], [s, c]] maximizing tr(Qᵀ·M) for
// M = [[m00, m01], [m10, m11]], and the maximum: tr(Qᵀ·M) = c·(m00+m11) +
// s·(m10−m01). Rotations only: a reflection would not commute with the
// rotary embedding.
func rotation2(m00, m01, m10, m11 float64) (c, s, value float64) {
	x, y := m00+m11, m10-m01
	value = math.Hypot(x, y)
	if value == 0 {
		return 1, 0, 0
	}
	return x / value, y / value, value
}
