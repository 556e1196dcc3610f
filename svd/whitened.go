package svd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// DefaultDamping is the ridge added to a Gram matrix by Whitened, as a
// fraction of the mean of its diagonal. It keeps directions the calibration
// data never excites from dominating the inverse; on bytellama 1e-3 … 1e-1
// change the whitened start by less than 0.3%.
const DefaultDamping = 1e-3

// Whitener is the factorisation G + λ·I = L·Lᵀ of a damped Gram matrix
// G = XᵀX of layer inputs (one sample per row of X), with L = E·Λ^{1/2} from
// the eigendecomposition G + λ·I = E·Λ·Eᵀ. For a weight W (out×in) acting as
// y = W·x, ‖(W−Ŵ)·Xᵀ‖_F² = ‖(W−Ŵ)·L‖_F² − λ‖W−Ŵ‖_F² and the damped
// objective ‖(W−Ŵ)·L‖_F² is what whitened truncation minimises.
type Whitener struct {
	// L is n×n with G + λ·I = L·Lᵀ; LInv is its inverse Λ^{-1/2}·Eᵀ.
	L, LInv *mat.Dense
}

// NewWhitener factorises the Gram matrix g with damping
// λ = damping·mean(diag g). It fails when g is not finite or λ is not
// positive (an all-zero Gram with no damping).
func NewWhitener(g mat.Symmetric, damping float64) (*Whitener, error) {
	n := g.SymmetricDim()
	var tr float64
	for i := range n {
		tr += g.At(i, i)
	}
	lambda := damping * tr / float64(n)
	if math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, errors.New("svd: Gram matrix is not finite")
	}
	d := mat.NewSymDense(n, nil)
	d.CopySym(g)
	for i := range n {
		d.SetSym(i, i, d.At(i, i)+lambda)
	}
	var eig mat.EigenSym
	if !eig.Factorize(d, true) {
		return nil, errors.New("svd: eigendecomposition of the Gram matrix did not converge")
	}
	vals := eig.Values(nil)
	var e mat.Dense
	eig.VectorsTo(&e)
	w := &Whitener{L: mat.NewDense(n, n, nil), LInv: mat.NewDense(n, n, nil)}
	for j, v := range vals {
		if !(v > 0) {
			return nil, fmt.Errorf("svd: damped Gram matrix has eigenvalue %g (is damping positive?)", v)
		}
		s := math.Sqrt(v)
		for i := range n {
			w.L.Set(i, j, e.At(i, j)*s)
			w.LInv.Set(j, i, e.At(i, j)/s)
		}
	}
	return w, nil
}

// Spectrum returns the singular values of delta·L in non-increasing order:
// the whitened truncation loss of rank r is the sum of the squares beyond
// the first r.
func (w *Whitener) Spectrum(delta mat.Matrix) ([]float64, error) {
	var dl mat.Dense
	dl.Mul(delta, w.L)
	var f mat.SVD
	if !f.Factorize(&dl, mat.SVDNone) {
		return nil, errors.New("svd: SVD did not converge")
	}
	return f.Values(nil), nil
}

// Whitened returns the rank-r factors B·A of the m×n matrix delta that
// minimise the damped activation error ‖(delta − B·A)·L‖_F² of the Gram
// matrix g (n×n, the inputs' XᵀX), with damping as in NewWhitener.
//
// The truncation is done in the whitened space, SVD(delta·L) = U·Σ·Vᵀ,
// giving Ŵ = U_r·Σ_r·V_rᵀ·L⁻¹, and the product is then re-factored through
// its own SVD, Ŵ = U′·Σ′·V′ᵀ, into the balanced B = U′·√Σ′, A = √Σ′·V′ᵀ
// (‖B‖_F = ‖A‖_F). Without that step B would carry the activation scale and
// A its inverse, which makes Adam's per-coordinate steps badly matched.
//
// In the result, S and TotalEnergy are the whitened singular values kept
// and ‖delta·L‖_F², so EnergyFraction is the fraction of the whitened
// energy kept; Method is Exact.
func Whitened(delta *mat.Dense, g mat.Symmetric, r int, damping float64) (*Factors, error) {
	_, n := delta.Dims()
	if g.SymmetricDim() != n {
		return nil, fmt.Errorf("svd: Gram matrix is %d×%d, want %d×%d", g.SymmetricDim(), g.SymmetricDim(), n, n)
	}
	if _, err := squaredNorm(delta); err != nil {
		return nil, err
	}
	wh, err := NewWhitener(g, damping)
	if err != nil {
		return nil, err
	}
	return wh.Factorize(delta, r)
}

// Factorize is Whitened with this whitener.
func (w *Whitener) Factorize(delta *mat.Dense, r int) (*Factors, error) {
	fs, err := w.Truncations(delta, []int{r})
	if err != nil {
		return nil, err
	}
	return fs[0], nil
}

// Truncations returns, for each r of ranks, the factors Factorize(delta,
// r) returns, from one SVD of delta·L: what a caller comparing several
// ranks of one matrix computes once.
func (w *Whitener) Truncations(delta *mat.Dense, ranks []int) ([]*Factors, error) {
	m, n := delta.Dims()
	var dl mat.Dense
	dl.Mul(delta, w.L)
	t, err := exactSVD(&dl)
	if err != nil {
		return nil, err
	}
	var total float64
	for _, s := range t.s {
		total += s * s
	}
	out := make([]*Factors, len(ranks))
	for k, r := range ranks {
		r = max(0, min(r, m, n))
		f := &Factors{S: append([]float64(nil), t.s[:r]...), Rank: r, TotalEnergy: total, Method: Exact}
		out[k] = f
		if r == 0 {
			continue
		}
		// Ŵ = U_r·M with M = Σ_r·V_rᵀ·L⁻¹ (r×n). With M = P·S·Qᵀ, Ŵ's own
		// SVD is (U_r·P)·S·Qᵀ since U_r·P has orthonormal columns.
		ur := t.u.Slice(0, m, 0, r)
		vr := t.v.Slice(0, n, 0, r)
		mm := mat.NewDense(r, n, nil)
		mm.Mul(vr.T(), w.LInv)
		for i := range r {
			row := mm.RawRowView(i)
			for j := range row {
				row[j] *= t.s[i]
			}
		}
		ms, err := exactSVD(mm)
		if err != nil {
			return nil, err
		}
		var u2 mat.Dense
		u2.Mul(ur, ms.u)
		bal := balanced(thinSVD{u: &u2, v: ms.v, s: ms.s}, r, total, Exact)
		f.B, f.A = bal.B, bal.A
	}
	return out, nil
}
