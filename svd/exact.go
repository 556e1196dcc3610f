package svd

import (
	"errors"

	"gonum.org/v1/gonum/mat"
)

// exactSVD returns the thin SVD of d: min(m, n) triplets.
func exactSVD(d mat.Matrix) (thinSVD, error) {
	var f mat.SVD
	if !f.Factorize(d, mat.SVDThin) {
		return thinSVD{}, errors.New("svd: SVD did not converge")
	}
	var t thinSVD
	t.u, t.v = new(mat.Dense), new(mat.Dense)
	f.UTo(t.u)
	f.VTo(t.v)
	t.s = f.Values(nil)
	return t, nil
}
