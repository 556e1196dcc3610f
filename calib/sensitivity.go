package calib

import (
	"context"
	"errors"
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// MaxSensitivityLogits bounds the original's logits Sensitivity keeps
// (floats): inputs past it are left out, the first one always kept. At a
// vocabulary of 32,000 it is 32 sequences of 256 positions (1 GiB).
const MaxSensitivityLogits = 1 << 28

// ErrNoLogits reports a model whose outputs Sensitivity cannot compare.
var ErrNoLogits = errors.New("calib: the model has no logits to compare")

// MinSensitivityRows is the fewest output rows (positions of a language
// model, items of a classifier) Sensitivity measures on. Each tensor's KL
// is a mean over rows; below about a thousand the differences between
// tensors are mostly sampling noise (on a 48-wide ViT with 12 images the
// weights spread over three orders of magnitude and the allocation they
// give loses accuracy).
const MinSensitivityRows = 1024

// ErrTooFewRows reports calibration data too small for Sensitivity.
var ErrTooFewRows = errors.New("calib: too few output rows to measure sensitivity")

// Sensitivity measures the end-to-end cost of approximating each named
// weight of m on its own: for every name it replaces that weight by
// approx(name), runs m on inputs, and records the mean over positions of
// KL(m ‖ m with that one weight replaced), every other weight exact. The
// weights of m are restored before it returns, also on error, so m must
// not run elsewhere meanwhile.
//
// The original's logits are computed once and kept for as many inputs as
// fit in MaxSensitivityLogits floats; later inputs are not used. A model
// without logits (an encoder without a head) gives ErrNoLogits, and
// fewer than MinSensitivityRows rows in the inputs used give ErrTooFewRows
// before any weight is replaced.
func Sensitivity(ctx context.Context, m *transformer.Model, inputs []*transformer.Input, names []string, approx func(name string) ([]float32, error)) (map[string]float64, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("calib: %w: no calibration inputs", formats.ErrInvalid)
	}
	var ref [][]float32
	vocab := 0
	var kept int
	for bi, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := m.Forward(in, transformer.Options{})
		if err != nil {
			return nil, fmt.Errorf("calibration batch %d: %w", bi, err)
		}
		if out.Logits == nil || len(out.LogitsShape) == 0 {
			return nil, ErrNoLogits
		}
		vocab = out.LogitsShape[len(out.LogitsShape)-1]
		if bi > 0 && kept+len(out.Logits) > MaxSensitivityLogits {
			break
		}
		kept += len(out.Logits)
		ref = append(ref, append([]float32(nil), out.Logits...))
	}
	if rows := kept / vocab; rows < MinSensitivityRows {
		return nil, fmt.Errorf("%w: %d rows, at least %d needed", ErrTooFewRows, rows, MinSensitivityRows)
	}
	res := make(map[string]float64, len(names))
	for _, name := range names {
		p, ok := m.Params[name]
		if !ok {
			return nil, fmt.Errorf("calib: %w: %q", transformer.ErrNotFound, name)
		}
		w, err := approx(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(w) != len(p.Data) {
			return nil, fmt.Errorf("calib: %w: %s has %d values, its approximation %d", formats.ErrInvalid, name, len(p.Data), len(w))
		}
		kl, err := replacedKL(ctx, m, p, w, inputs[:len(ref)], ref, vocab)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res[name] = kl
	}
	return res, nil
}

// replacedKL runs m with p's values replaced by w on inputs and returns the
// mean KL from the reference logits ref; p is restored before it returns.
func replacedKL(ctx context.Context, m *transformer.Model, p *transformer.Param, w []float32, inputs []*transformer.Input, ref [][]float32, vocab int) (float64, error) {
	saved := append([]float32(nil), p.Data...)
	copy(p.Data, w)
	defer copy(p.Data, saved)
	var sum float64
	var rows int
	for bi, in := range inputs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		out, err := m.Forward(in, transformer.Options{})
		if err != nil {
			return 0, fmt.Errorf("calibration batch %d: %w", bi, err)
		}
		kl, err := transformer.KLDiv(ref[bi], out.Logits, vocab, 1, nil)
		if err != nil {
			return 0, err
		}
		n := len(ref[bi]) / vocab
		sum += kl * float64(n)
		rows += n
	}
	return sum / float64(rows), nil
}

// RelativeError returns ‖(W − Ŵ)·L‖²_F / ‖W·L‖²_F for the rows×cols
// matrices w and approx, where L·Lᵀ = gram (the Gram matrix of the layer's
// inputs): the share of the layer's output energy on the calibration data
// that the approximation loses. A nil gram gives the plain ratio
// ‖W − Ŵ‖²_F / ‖W‖²_F. The sums run in float64.
func RelativeError(w, approx []float32, rows, cols int, gram *mat.SymDense) (float64, error) {
	if len(w) != rows*cols || len(approx) != rows*cols {
		return 0, fmt.Errorf("calib: %w: %d and %d values for a %d×%d matrix", formats.ErrInvalid, len(w), len(approx), rows, cols)
	}
	if gram != nil && gram.SymmetricDim() != cols {
		return 0, fmt.Errorf("calib: %w: Gram matrix of order %d for %d columns", formats.ErrInvalid, gram.SymmetricDim(), cols)
	}
	// quad returns x·G·xᵀ for one row x (x·xᵀ without a Gram matrix).
	gx := make([]float64, cols)
	quad := func(x []float64) float64 {
		if gram == nil {
			var s float64
			for _, v := range x {
				s += v * v
			}
			return s
		}
		g := mat.NewVecDense(cols, gx)
		g.MulVec(gram, mat.NewVecDense(cols, x))
		var s float64
		for i, v := range x {
			s += v * gx[i]
		}
		return s
	}
	row, diff := make([]float64, cols), make([]float64, cols)
	var num, den float64
	for i := range rows {
		for j := range cols {
			k := i*cols + j
			row[j] = float64(w[k])
			diff[j] = float64(w[k]) - float64(approx[k])
		}
		num += quad(diff)
		den += quad(row)
	}
	if den == 0 {
		return 0, nil
	}
	return num / den, nil
}
