package transformer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestLinearInputs(t *testing.T) {
	// tol covers float32 rounding of an RMS norm over a few dozen values.
	const tol = 1e-5
	for ci, tc := range tinyConfigs {
		if tc.name != "llama" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.json, tc.untied, uint64(ci+1))
			rng := rand.New(rand.NewPCG(uint64(ci+1), 9))
			in := randomInput(m, tc.T, rng)
			tr := m.NewTrainer()
			if tr.LinearInputs() != nil {
				t.Fatal("inputs before the first Forward")
			}
			out, err := tr.Forward(in, Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			got := tr.LinearInputs()
			if want := 7 * m.NumLayers(); len(got) != want {
				t.Fatalf("%d linear inputs, want %d", len(got), want)
			}
			N := out.Batch * out.Seq
			for _, li := range got {
				w := m.Params[li.Weight]
				if w == nil || len(w.Shape) != 2 || w.Shape[1] != li.Cols || li.Rows != N || len(li.X) != N*li.Cols {
					t.Fatalf("%s: %d×%d input for weight %v", li.Weight, li.Rows, li.Cols, w.Shape)
				}
			}
			// Layer 0's query input is the RMS norm of the embedding output.
			var q LinearInput
			for _, li := range got {
				if strings.HasSuffix(li.Weight, "layers.0.self_attn.q_proj.weight") {
					q = li
				}
			}
			if q.X == nil {
				t.Fatal("no input for layer 0's q_proj")
			}
			spec := m.Spec.Layers[0].Norm1
			g := m.Params[spec.Weight].Data
			x0 := out.HiddenStates[0]
			H := q.Cols
			want := make([]float32, len(q.X))
			for i := range N {
				var ss float64
				for _, v := range x0[i*H : i*H+H] {
					ss += float64(v) * float64(v)
				}
				r := 1 / math.Sqrt(ss/float64(H)+spec.Eps)
				for j := range H {
					want[i*H+j] = float32(float64(x0[i*H+j]) * r * float64(g[j]))
				}
			}
			if e := relErr(q.X, want); e > tol {
				t.Errorf("q_proj input differs from the normed embedding by %g", e)
			}
		})
	}
}
