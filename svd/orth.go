package svd

import (
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// orthonormalize replaces the r×c matrix y (r ≥ c) in place by the thin
// factor Q of its Householder QR factorisation, whose orthonormal columns
// span the column space of y.
func orthonormalize(y *mat.Dense) {
	raw := y.RawMatrix()
	tau := make([]float64, raw.Cols)
	var query [1]float64
	lapack64.Geqrf(raw, tau, query[:], -1)
	lwork := int(query[0])
	lapack64.Orgqr(raw, tau, query[:], -1)
	lwork = max(lwork, int(query[0]), raw.Cols)
	work := make([]float64, lwork)
	lapack64.Geqrf(raw, tau, work, lwork)
	lapack64.Orgqr(raw, tau, work, lwork)
}
