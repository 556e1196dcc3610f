package recipe

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Rounding is how the quantized tensors of a plan get their first values,
// the start of quantization-aware distillation and the file's values
// without it.
type Rounding string

// Roundings.
const (
	// RoundingGPTQ rounds every dense layer tensor with Hessian-aware
	// rounding on the calibration inputs' Gram matrix (quant.RoundGPTQ),
	// keeping round to nearest's scales; tensors without a Gram matrix
	// (embeddings, head) are rounded to nearest. The default.
	RoundingGPTQ Rounding = "gptq"
	// RoundingRTN rounds every tensor to nearest.
	RoundingRTN Rounding = "rtn"
)

// ParseRounding parses "gptq" or "rtn".
func ParseRounding(s string) (Rounding, error) {
	switch Rounding(s) {
	case RoundingGPTQ, RoundingRTN:
		return Rounding(s), nil
	}
	return "", fmt.Errorf("%w: rounding %q (want gptq or rtn)", formats.ErrInvalid, s)
}

// roundGPTQ replaces the values of every tensor of vm that qp quantizes
// and that holds a layer's whole weight (a dense increment over a zero
// base, as a bit budget stores them) by its GPTQ rounding on the Gram
// matrix of the layer's inputs in grams (keyed by original weight name).
// The values are a fixed point of the quantization-aware trainer's
// refresh, so training starts from them and storing them reproduces them.
// It returns the number of tensors rounded.
func roundGPTQ(ctx context.Context, vm *vlora.Model, qp *vlora.QuantPlan, grams map[string]*mat.SymDense, opt quant.GPTQOptions, log io.Writer) (int, error) {
	names := make([]string, 0, len(grams))
	for n := range grams {
		names = append(names, n)
	}
	sort.Strings(names)
	done := 0
	for _, n := range names {
		l, s, ok := vm.SplitName(n)
		if !ok {
			continue
		}
		dn := vlora.DeltaName(l, s)
		t := vm.Tensors[dn]
		if t == nil {
			continue
		}
		sc, ok := qp.SchemeOf(dn, t.Shape)
		if !ok {
			continue
		}
		w, _, err := vm.LayerWeight(l, s)
		if err != nil {
			return done, fmt.Errorf("%s: %w", n, err)
		}
		if !slices.Equal(w, t.Data) {
			continue // a base or factors add to the increment
		}
		rows, cols := vlora.Matrix(t.Shape)
		if err := quant.RoundGPTQ(ctx, t.Data, t.Data, rows, cols, sc, grams[n], opt); err != nil {
			return done, fmt.Errorf("%s: %w", dn, err)
		}
		done++
	}
	fmt.Fprintf(log, "rounding: %d dense layer tensors rounded by GPTQ on the calibration inputs\n", done)
	return done, nil
}
