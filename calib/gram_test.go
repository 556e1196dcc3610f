package calib

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/transformer"
)

func TestGramsMatchNaiveSums(t *testing.T) {
	// tol is relative: each batch's product is summed in float32 over at
	// most 12 positions before the float64 accumulation.
	const tol = 1e-5
	m, inputs := tinyModel(t, rand.New(rand.NewPCG(1, 2)), 3, 2, 6)
	got, err := Grams(context.Background(), m, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 14 {
		t.Fatalf("%d Gram matrices, want 14 (7 per layer)", len(got))
	}
	// Reference: the same inputs from a fresh trainer, summed naively.
	want := map[string][]float64{}
	tr := m.NewTrainer()
	for _, in := range inputs {
		if _, err := tr.Forward(in, transformer.Options{}); err != nil {
			t.Fatal(err)
		}
		for _, li := range tr.LinearInputs() {
			n := li.Cols
			if want[li.Weight] == nil {
				want[li.Weight] = make([]float64, n*n)
			}
			for r := range li.Rows {
				x := li.X[r*n : r*n+n]
				for i := range n {
					for j := range n {
						want[li.Weight][i*n+j] += float64(x[i]) * float64(x[j])
					}
				}
			}
		}
	}
	for name, g := range got {
		n := g.SymmetricDim()
		var diff, norm float64
		for i := range n {
			for j := range n {
				d := g.At(i, j) - want[name][i*n+j]
				diff += d * d
				norm += want[name][i*n+j] * want[name][i*n+j]
			}
		}
		if math.Sqrt(diff) > tol*math.Sqrt(norm) {
			t.Errorf("%s: relative error %g", name, math.Sqrt(diff/norm))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Grams(ctx, m, inputs); err == nil {
		t.Error("no error from a cancelled context")
	}
}
