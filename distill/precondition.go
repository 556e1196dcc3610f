package distill

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// DefaultPreconditionDamping is the ridge of the ScaledGD preconditioner as
// a fraction of the mean diagonal of the factor Gram matrix.
const DefaultPreconditionDamping = 1e-2

// precondition replaces the gradients of every trainable low-rank pair by
// ScaledGD's (Tong, Ma & Chi): ∇B ← ∇B·(AAᵀ + εI)⁻¹ and
// ∇A ← (BᵀB + εI)⁻¹·∇A, with ε = damping × mean diagonal of the r×r Gram
// matrix. The step then no longer depends on how the product B·A is split
// between its factors. Adam's per-entry scaling is applied afterwards.
func (s *student) precondition(damping float64) error {
	for _, bd := range s.bindings {
		if bd.aP == nil || bd.bP == nil || bd.rank == 0 {
			continue
		}
		r, rows, cols := bd.rank, bd.rows, bd.cols
		// gB (rows×r) ← gB·G⁻¹ with G = A·Aᵀ, i.e. solve G·X = gBᵀ.
		if err := solveGram(bd.a.Data, r, cols, false, bd.bP.grad, rows, true, damping); err != nil {
			return fmt.Errorf("%s: %w", bd.dense.Name, err)
		}
		// gA (r×cols) ← G⁻¹·gA with G = Bᵀ·B.
		if err := solveGram(bd.b.Data, rows, r, true, bd.aP.grad, cols, false, damping); err != nil {
			return fmt.Errorf("%s: %w", bd.dense.Name, err)
		}
	}
	return nil
}

// solveGram forms the r×r Gram matrix of the factor f (r×n rows when
// transposed is false: G = f·fᵀ; n×r when true: G = fᵀ·f), adds the ridge
// and overwrites g with G⁻¹·g (g r×m) or, when gT is set, g·G⁻¹ (g m×r).
func solveGram(f []float32, d0, d1 int, transposed bool, g []float32, m int, gT bool, damping float64) error {
	r, n := d0, d1
	if transposed {
		r, n = d1, d0
	}
	gram := make([]float32, r*r)
	if transposed {
		kernels.Sgemm(true, false, r, r, n, 1, f, r, f, r, 0, gram, r)
	} else {
		kernels.Sgemm(false, true, r, r, n, 1, f, n, f, n, 0, gram, r)
	}
	var tr float64
	for i := range r {
		tr += float64(gram[i*r+i])
	}
	eps := damping*tr/float64(r) + 1e-12
	sym := mat.NewSymDense(r, nil)
	for i := range r {
		for j := i; j < r; j++ {
			v := float64(gram[i*r+j])
			if i == j {
				v += eps
			}
			sym.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(sym) {
		return fmt.Errorf("factor Gram matrix not positive definite")
	}
	rhs := mat.NewDense(r, m, nil)
	for i := range r {
		for j := range m {
			if gT {
				rhs.Set(i, j, float64(g[j*r+i]))
			} else {
				rhs.Set(i, j, float64(g[i*m+j]))
			}
		}
	}
	var x mat.Dense
	if err := ch.SolveTo(&x, rhs); err != nil {
		return err
	}
	for i := range r {
		for j := range m {
			if gT {
				g[j*r+i] = float32(x.At(i, j))
			} else {
				g[i*m+j] = float32(x.At(i, j))
			}
		}
	}
	return nil
}
