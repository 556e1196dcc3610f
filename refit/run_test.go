package refit

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// outputError returns Σ‖logits_student − logits_teacher‖² over inputs.
func outputError(t *testing.T, teacher, student *transformer.Model, inputs []*transformer.Input) float64 {
	t.Helper()
	var e float64
	for _, in := range inputs {
		a, err := teacher.Forward(in, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := student.Forward(in, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range a.Logits {
			d := float64(a.Logits[i] - b.Logits[i])
			e += d * d
		}
	}
	return e
}

func TestRunReducesOutputError(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	for _, base := range []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero} {
		t.Run(string(base), func(t *testing.T) {
			opt := convert.Options{CompoundSize: 2, Rank: 4, Base: base}
			res, err := convert.Compress(ctx, dir, filepath.Join(t.TempDir(), "v"), opt)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := vlora.Load(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			ck, err := formats.OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			teacher, err := transformer.Load(ck.Config, transformer.CheckpointWeights{Checkpoint: ck})
			if err != nil {
				t.Fatal(err)
			}
			student, err := transformer.Load(ck.Config, vm)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var inputs []*transformer.Input
			for range 3 {
				ids := make([]int, 4*32)
				for i := range ids {
					ids[i] = rng.IntN(ck.Config.VocabSize)
				}
				inputs = append(inputs, &transformer.Input{Batch: 4, Seq: 32, IDs: ids})
			}
			before := outputError(t, teacher, student, inputs)
			n, err := Run(ctx, teacher, student, vm, inputs, DefaultDamping)
			if err != nil {
				t.Fatal(err)
			}
			if want := 7 * 4; n != want {
				t.Errorf("%d increments corrected, want %d", n, want)
			}
			after := outputError(t, teacher, student, inputs)
			if !(after < 0.9*before) {
				t.Errorf("output error %g after refit, %g before: want at least 10%% less", after, before)
			}
			// The student's dense weights must be those of the updated file.
			for l := range vm.Manifest.NumLayers {
				for _, s := range vm.Manifest.Suffixes {
					w, _, err := vm.LayerWeight(l, s.Name)
					if err != nil {
						t.Fatal(err)
					}
					p := student.Params[vm.LayerName(l, s.Name)]
					for i := range w {
						if w[i] != p.Data[i] {
							t.Fatalf("layer %d %s: student weight differs from the file at %d", l, s.Name, i)
						}
					}
				}
			}
		})
	}
}
