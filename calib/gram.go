// Package calib gathers statistics of a model's activations on calibration
// data, for activation-aware compression.
package calib

import (
	"context"
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// Grams runs m on each input and returns, for every linear layer of the
// block stack that Trainer.LinearInputs reports, the Gram matrix XᵀX of its
// inputs summed over all positions of all inputs, keyed by the weight's
// name. Each batch's product is formed in float32 by the SGEMM kernel and
// summed in float64. Memory is one training pass plus one n×n matrix per
// layer.
func Grams(ctx context.Context, m *transformer.Model, inputs []*transformer.Input) (map[string]*mat.SymDense, error) {
	tr := m.NewTrainer()
	out := map[string]*mat.SymDense{}
	var buf []float32
	for bi, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := tr.Forward(in, transformer.Options{}); err != nil {
			return nil, fmt.Errorf("calibration batch %d: %w", bi, err)
		}
		for _, li := range tr.LinearInputs() {
			n := li.Cols
			if cap(buf) < n*n {
				buf = make([]float32, n*n)
			}
			buf = buf[:n*n]
			kernels.Sgemm(true, false, n, n, li.Rows, 1, li.X, n, li.X, n, 0, buf, n)
			g := out[li.Weight]
			if g == nil {
				g = mat.NewSymDense(n, nil)
				out[li.Weight] = g
			}
			raw := g.RawSymmetric()
			for i := range n {
				row := raw.Data[i*raw.Stride : i*raw.Stride+n]
				for j := i; j < n; j++ {
					row[j] += float64(buf[i*n+j])
				}
			}
		}
	}
	return out, nil
}
