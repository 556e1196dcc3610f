// Package refit corrects the low-rank increments of a compressed model in
// closed form, layer by layer, so that each layer's output on the
// compressed model's own inputs matches the original layer's output on the
// original's inputs, and compression errors do not compound through the
// stack.
package refit

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// SolveB returns the factor B (m×r) minimising
//
//	‖X·Wᵀ − X̃·(Wb + B·A)ᵀ‖_F² + λ‖B·A·R‖_F²
//
// for fixed A (r×n), where the rows of X are the original layer's inputs
// and those of X̃ the compressed model's inputs at the same positions; R is
// the ridge, R·Rᵀ = λ·I with λ = damping·mean(diag G̃). It needs only
// the Gram matrix gram = X̃ᵀX̃ and the cross Gram cross = X̃ᵀX (both n×n):
//
//	B = (W·crossᵀ − Wb·G̃)·Aᵀ·(A·(G̃ + λI)·Aᵀ)⁻¹.
//
// base may be nil (no base). w and base are m×n.
func SolveB(w, base, a *mat.Dense, cross *mat.Dense, gram mat.Symmetric, damping float64) (*mat.Dense, error) {
	m, n := w.Dims()
	r, an := a.Dims()
	if an != n || gram.SymmetricDim() != n {
		return nil, fmt.Errorf("refit: A is %d×%d and the Gram %d×%d for a %d×%d weight", r, an, gram.SymmetricDim(), gram.SymmetricDim(), m, n)
	}
	if cr, cc := cross.Dims(); cr != n || cc != n {
		return nil, fmt.Errorf("refit: cross Gram is %d×%d, want %d×%d", cr, cc, n, n)
	}
	var tr float64
	for i := range n {
		tr += gram.At(i, i)
	}
	lambda := damping * tr / float64(n)
	// rhs = (W·crossᵀ − Wb·G̃)·Aᵀ, m×r.
	var t mat.Dense
	t.Mul(w, cross.T())
	if base != nil {
		var bg mat.Dense
		bg.Mul(base, gram)
		t.Sub(&t, &bg)
	}
	var rhs mat.Dense
	rhs.Mul(&t, a.T())
	// lhs = A·(G̃ + λI)·Aᵀ, r×r, symmetric positive definite when A has full
	// row rank and λ > 0 or X̃ spans A's rows.
	var ag, lhs mat.Dense
	ag.Mul(a, gram)
	lhs.Mul(&ag, a.T())
	if lambda > 0 {
		var aat mat.Dense
		aat.Mul(a, a.T())
		aat.Scale(lambda, &aat)
		lhs.Add(&lhs, &aat)
	}
	sym := mat.NewSymDense(r, nil)
	for i := range r {
		for j := i; j < r; j++ {
			sym.SetSym(i, j, 0.5*(lhs.At(i, j)+lhs.At(j, i)))
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(sym) {
		return nil, errors.New("refit: A·G̃·Aᵀ is not positive definite (A rank-deficient or no data?)")
	}
	// B·lhs = rhs  ⇔  lhs·Bᵀ = rhsᵀ.
	var bt mat.Dense
	if err := ch.SolveTo(&bt, rhs.T()); err != nil {
		return nil, fmt.Errorf("refit: %w", err)
	}
	return mat.DenseCopyOf(bt.T()), nil
}
