package verify

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestAgreesWithReference compresses bytellama (K=8, r=32, SVD only) and
// checks kl_mean and top1_agreement on the first 64 eval sequences against
// the PyTorch reference figures (cpu-reference-results.md, 0-step rows),
// within 2% relative.
func TestAgreesWithReference(t *testing.T) {
	model := testenv.SharedModel(t, "bytellama")
	data := testenv.Shared(t, "data/stdlib-bytes/eval.safetensors")
	cases := []struct {
		base        vlora.BaseMode
		kl, agree   float64
		nllOriginal float64
	}{
		{vlora.BaseFirst, 2.3607, 0.3610, 0.9327},
		{vlora.BaseMean, 2.6715, 0.3530, 0.9327},
	}
	for _, tc := range cases {
		t.Run(string(tc.base), func(t *testing.T) {
			opt := convert.Options{}
			opt.Base = tc.base
			out := t.TempDir()
			if _, err := convert.Compress(context.Background(), model, out, opt); err != nil {
				t.Fatal(err)
			}
			rep, err := RunPaths(context.Background(), model, out, Options{Data: data, Samples: 64, Baseline: BaselineNone})
			if err != nil {
				t.Fatal(err)
			}
			within := func(name string, got, want float64) {
				if math.Abs(got-want) > 0.02*want {
					t.Errorf("%s = %.4f, reference %.4f (more than 2%% apart)", name, got, want)
				}
			}
			within("kl_mean", *rep.KLMean, tc.kl)
			within("top1_agreement", *rep.Top1Agreement, tc.agree)
			within("nll_original", *rep.NLLOriginal, tc.nllOriginal)
			if rep.Positions != 64*256 {
				t.Errorf("positions = %d, want %d", rep.Positions, 64*256)
			}
			if len(rep.LayerRelError) != 9 || rep.LayerRelError[0] != 0 {
				t.Errorf("layer errors %v: want 9, the first (embeddings) exactly 0", rep.LayerRelError)
			}
			if rep.ParamsCompressed >= rep.ParamsOriginal || rep.BytesCompressed != 4*rep.ParamsCompressed {
				t.Errorf("counts %d/%d params, %d bytes", rep.ParamsCompressed, rep.ParamsOriginal, rep.BytesCompressed)
			}
		})
	}
}

// TestFullRankIsExact checks that a full-rank file verifies with KL ≈ 0 on
// sampled data, and that thresholds pass and fail as asked.
func TestFullRankIsExact(t *testing.T) {
	model := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	opt := convert.Options{}
	opt.Rank, opt.Energy, opt.CompoundSize = 0, 1, 2
	if _, err := convert.Compress(context.Background(), model, out, opt); err != nil {
		t.Fatal(err)
	}
	rep, err := RunPaths(context.Background(), model, out, Options{Samples: 4, SeqLen: 12, MaxKL: 1e-6, MinAgreement: 0.999})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DataGenerated || !strings.Contains(rep.Data, "sampled") {
		t.Errorf("data description %q", rep.Data)
	}
	if *rep.KLMean > 1e-9 || *rep.Top1Agreement != 1 || !rep.Pass {
		t.Errorf("full rank: KL %g, agreement %g, pass %v", *rep.KLMean, *rep.Top1Agreement, rep.Pass)
	}
	// A rank-1 file misses a strict threshold.
	opt.Rank, opt.Energy = 1, 0
	low := t.TempDir()
	if _, err := convert.Compress(context.Background(), model, low, opt); err != nil {
		t.Fatal(err)
	}
	rep, err = RunPaths(context.Background(), model, low, Options{Samples: 4, SeqLen: 12, MaxKL: 1e-6})
	if !errors.Is(err, ErrThreshold) || rep == nil || rep.Pass {
		t.Errorf("rank 1 with max-kl 1e-6: err %v", err)
	}
}

// TestIntegrityFailures checks that a file compressed from another model, or
// checked against a modified original, is rejected as invalid input.
func TestIntegrityFailures(t *testing.T) {
	model := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	opt := convert.Options{}
	opt.CompoundSize, opt.Rank = 2, 4
	if _, err := convert.Compress(context.Background(), model, out, opt); err != nil {
		t.Fatal(err)
	}
	// Same tensors, different bytes: the hash check must catch it.
	changed := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(model, f))
		if f == "model.safetensors" {
			b[len(b)-1] ^= 1
		}
		os.WriteFile(filepath.Join(changed, f), b, 0o644)
	}
	_, err := RunPaths(context.Background(), changed, out, Options{Samples: 2, SeqLen: 8})
	if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("modified original: %v", err)
	}
	// A different architecture entirely.
	other := testenv.Shared(t, "golden/gpt2")
	_, err = RunPaths(context.Background(), other, out, Options{Samples: 2, SeqLen: 8})
	if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), "not represented") {
		t.Errorf("wrong original: %v", err)
	}
}
