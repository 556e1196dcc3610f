package transformer_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// TestBlockTrainerMatchesTrainer checks that NewBlockTrainer hands over,
// block by block, exactly the gradients NewTrainer returns, on a resident
// and on a streamed model, with and without recomputation, and that their
// training forward passes give the resident one's logits.
func TestBlockTrainerMatchesTrainer(t *testing.T) {
	for _, name := range []string{"llama-gqa-untied", "qwen2-bias-tied", "gpt2", "bert"} {
		t.Run(name, func(t *testing.T) {
			ck, err := formats.OpenCheckpoint(testenv.GoldenModel(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			w := transformer.CheckpointWeights{Checkpoint: ck}
			resident, err := transformer.Load(ck.Config, w)
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := transformer.LoadStreamed(ck.Config, w, w)
			if err != nil {
				t.Fatal(err)
			}
			in := &transformer.Input{Batch: 2, Seq: 4, IDs: []int{1, 5, 2, 7, 3, 3, 9, 4}}
			want, wantOut := gradsOf(t, resident.NewTrainer(), in, nil)
			for _, m := range []*transformer.Model{resident, streamed} {
				for _, recompute := range []bool{false, true} {
					blocks := map[string][]float32{}
					tr := m.NewBlockTrainer(func(l int, grads []*transformer.Param) error {
						for _, g := range grads {
							blocks[g.Name] = slices.Clone(g.Data)
						}
						return nil
					})
					tr.Recompute = recompute
					got, out := gradsOf(t, tr, in, blocks)
					if !slices.Equal(out, wantOut) {
						t.Errorf("streamed %v recompute %v: logits differ", m.Streamed(), recompute)
					}
					if len(got) != len(want) {
						t.Fatalf("streamed %v recompute %v: %d gradients, want %d", m.Streamed(), recompute, len(got), len(want))
					}
					for n, g := range want {
						if !slices.Equal(got[n], g) {
							t.Errorf("streamed %v recompute %v: gradient of %s differs", m.Streamed(), recompute, n)
						}
					}
				}
			}
		})
	}
}

// gradsOf runs one training step of tr on in with a fixed logit gradient
// and returns every parameter's gradient (blocks, when not nil, collects
// the block gradients handed over during Backward) and the logits (the last
// hidden state for encoders).
func gradsOf(t *testing.T, tr *transformer.Trainer, in *transformer.Input, blocks map[string][]float32) (map[string][]float32, []float32) {
	t.Helper()
	out, err := tr.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Encoders without a head are differentiated through their last
	// hidden state.
	y := out.Logits
	if y == nil {
		y = out.LastHidden
	}
	logits := slices.Clone(y)
	rng := rand.New(rand.NewPCG(1, 2))
	g := make([]float32, len(y))
	for i := range g {
		g[i] = float32(rng.NormFloat64())
	}
	og := &transformer.OutputGrad{Logits: g}
	if out.Logits == nil {
		og = &transformer.OutputGrad{LastHidden: g}
	}
	grads, err := tr.Backward(og)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string][]float32{}
	for n, p := range grads {
		res[n] = slices.Clone(p.Data)
	}
	for n, d := range blocks {
		if _, dup := res[n]; dup {
			t.Errorf("%s returned both per block and in the map", n)
		}
		res[n] = d
	}
	return res, logits
}
