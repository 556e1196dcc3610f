package distill

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestQuantizationAwareBytellama distills bytellama for quantized storage
// within the 1.2 M-token budget (300 steps × 16 × 256, calib data,
// every stored tensor trained, hidden-state weight 10, clipping at 1) and
// checks each size target on the first 64 eval sequences: KL below the
// round-to-nearest baseline of the same size. Each case takes 5–25 minutes
// on 2 shared cores, so the test runs only with VLORA_QUALITY=1.
func TestQuantizationAwareBytellama(t *testing.T) {
	if os.Getenv("VLORA_QUALITY") != "1" {
		t.Skip("set VLORA_QUALITY=1 to run the quantization-aware quality runs")
	}
	model := testenv.SharedModel(t, "bytellama")
	calib := testenv.Shared(t, "data/stdlib-bytes/calib.safetensors")
	eval := testenv.Shared(t, "data/stdlib-bytes/eval.safetensors")
	sc := func(s string) quant.Scheme {
		q, err := quant.ParseScheme(s)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	cases := []struct {
		name string
		// k = 1 with the first layer as base stores every layer densely:
		// pure quantization-aware training without sharing.
		k, rank int
		base    vlora.BaseMode
		lr      float64
		plan    QuantPlan
		maxBits float64
		maxKL   float64
	}{
		{"dense int4/g32/full", 1, 32, vlora.BaseFirst, 5e-4, QuantPlan{Bases: sc("int4/g32/full"), Passthrough: sc("int4/g32/full")}, 4.6, 0.036},
		{"dense int3/g32/full, embeddings and head int4/g32/full", 1, 32, vlora.BaseFirst, 7e-4, QuantPlan{Bases: sc("int3/g32/full"), Passthrough: sc("int4/g32/full")}, 3.6, 0.10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			opt := convert.DefaultOptions()
			opt.CompoundSize, opt.Rank, opt.Base = c.k, c.rank, c.base
			res, err := convert.Compress(context.Background(), model, out, opt)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := RunJob(context.Background(), Job{
				Original: model, Input: res.Path, Output: filepath.Join(out, vlora.FileName),
				Data: calib, EvalData: eval, EvalSamples: 64,
				Options: Options{Steps: 300, Batch: 16, LR: c.lr, Train: TrainAll, HiddenWeight: 10, ClipNorm: 1, Quant: c.plan},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.3f bits/weight, KL %.4f, top-1 agreement %.4f, NLL %.4f, %d tokens",
				c.name, sum.BitsPerWeight, sum.EvalKL, sum.EvalAgreement, sum.EvalNLL, sum.Tokens)
			if sum.Tokens > 1_228_800 {
				t.Errorf("%d training tokens, over the 1.2 M budget", sum.Tokens)
			}
			if sum.BitsPerWeight > c.maxBits {
				t.Errorf("%.3f bits per weight, over %.1f", sum.BitsPerWeight, c.maxBits)
			}
			if sum.EvalKL > c.maxKL {
				t.Errorf("KL %.4f, over the target %.3f", sum.EvalKL, c.maxKL)
			}
		})
	}
}
