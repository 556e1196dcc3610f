package transformer

import (
	"math/rand/v2"
	"testing"
)

// TestLayerMatchesFullPass checks ForwardLayer against the hidden states of
// a full pass, and BackwardLayer against Backward with the same gradient on
// that block's output.
func TestLayerMatchesFullPass(t *testing.T) {
	// tol covers float32 rounding of differently ordered sums.
	const tol = 1e-5
	for ci, tc := range tinyConfigs {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.json, tc.untied, uint64(ci+1))
			rng := rand.New(rand.NewPCG(uint64(ci+1), 11))
			in := randomInput(m, tc.T, rng)
			full := m.NewTrainer()
			out, err := full.Forward(in, Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			li := 0 // the output of layer 0 is hidden state 1 in every architecture
			x := append([]float32(nil), out.HiddenStates[li]...)
			y := append([]float32(nil), out.HiddenStates[li+1]...)
			dy := make([]float32, len(y))
			for i := range dy {
				dy[i] = float32(rng.NormFloat64())
			}
			want, err := full.Backward(&OutputGrad{Hidden: map[int][]float32{li + 1: dy}})
			if err != nil {
				t.Fatal(err)
			}
			tr := m.NewTrainer()
			got, err := tr.ForwardLayer(li, out.Batch, out.Seq, x)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(got, y); e > tol {
				t.Errorf("block output: relative error %.3g", e)
			}
			if _, err := tr.Backward(&OutputGrad{}); err == nil {
				t.Error("Backward after ForwardLayer: no error")
			}
			grads, _, err := tr.BackwardLayer(dy)
			if err != nil {
				t.Fatal(err)
			}
			// Parameters outside the block get no gradient; those inside
			// (at least the norms and four projections) match the full pass.
			n := 0
			for name, g := range grads {
				if !nonZero(g.Data) {
					continue
				}
				n++
				if e := relErr(g.Data, want[name].Data); e > tol {
					t.Errorf("%s: relative error %.3g", name, e)
				}
			}
			if n < 5 {
				t.Fatalf("%d block parameters with a gradient, want at least 5", n)
			}
		})
	}
}

func nonZero(x []float32) bool {
	for _, v := range x {
		if v != 0 {
			return true
		}
	}
	return false
}
