package verify

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
)

// TestBaselineOnTinyModel checks the baseline's choice, its presence in
// the report and the verdict on the tiny llama: an F32 VLoRA file is larger
// than every standard size, so auto picks int8 and the file loses.
func TestBaselineOnTinyModel(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	opt := convert.Options{}
	opt.CompoundSize, opt.Rank = 2, 3
	if _, err := convert.Compress(context.Background(), dir, out, opt); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		choice, want string
	}{
		{"", "int8/row"},
		{BaselineAuto, "int8/row"},
		{"int3", "int3/g32"},
		{BaselineNone, ""},
	}
	for _, c := range cases {
		t.Run(c.choice, func(t *testing.T) {
			rep, err := RunPaths(context.Background(), dir, out, Options{Samples: 4, SeqLen: 12, Baseline: c.choice})
			if err != nil {
				t.Fatal(err)
			}
			if rep.BitsPerWeight == nil || math.Abs(*rep.BitsPerWeight-32*float64(rep.ParamsCompressed)/float64(rep.ParamsOriginal)) > 0.5 {
				t.Errorf("bits per weight %v for %d of %d values in F32 (norms aside)", rep.BitsPerWeight, rep.ParamsCompressed, rep.ParamsOriginal)
			}
			if c.want == "" {
				if rep.Baseline != nil {
					t.Errorf("baseline %+v, want none", rep.Baseline)
				}
				return
			}
			b := rep.Baseline
			if b == nil || b.Scheme != c.want {
				t.Fatalf("baseline %+v, want %s", b, c.want)
			}
			if b.CompressedWins || b.KLMean < 0 || b.Top1Agreement <= 0 || b.BitsPerWeight >= *rep.BitsPerWeight {
				t.Errorf("baseline %+v against %.3f bits, KL %.4f", b, *rep.BitsPerWeight, *rep.KLMean)
			}
		})
	}
	if _, err := RunPaths(context.Background(), dir, out, Options{Samples: 2, SeqLen: 8, Baseline: "int5"}); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("baseline int5: %v, want ErrInvalid", err)
	}
}

// TestBaselineAgreesWithQuant measures verify's round-to-nearest baselines
// of bytellama on the first 64 eval sequences and checks them against the
// independent computation of the reference (../shared/reference,
// reproduced by quant's TestRoundToNearestBytellama): bits per weight to
// half a unit of the reference's last digit, KL, top-1 agreement and NLL
// within 2% (int8's KL, given to one digit, within 5e-5).
func TestBaselineAgreesWithQuant(t *testing.T) {
	if testing.Short() {
		t.Skip("four evaluations of bytellama; skipped with -short")
	}
	dir := testenv.SharedModel(t, "bytellama")
	evalPath := testenv.Shared(t, "data/stdlib-bytes/eval.safetensors")
	orig, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := dataset.Load(context.Background(), evalPath, dataset.LoadOptions{Samples: 64})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                 string
		bits, kl, agree, nll float64
		klAbs                float64
	}{
		{"int8", 8.14, 0.0002, 0.994, 0.933, 5e-5},
		{"int4", 4.54, 0.0358, 0.921, 0.961, 0},
		{"int3", 3.54, 0.2602, 0.803, 1.164, 0},
		{"int2", 2.54, 4.647, 0.092, 5.426, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The compressed side is irrelevant to the baseline's figures.
			kl, bits := 0.0, 1.0
			rep := &Report{KLMean: &kl, BitsPerWeight: &bits}
			if err := baseline(context.Background(), rep, orig, data, params{Baseline: c.name, Batch: DefaultBatch}); err != nil {
				t.Fatal(err)
			}
			b := rep.Baseline
			t.Logf("%s: %.3f bits/weight, KL %.5f, top-1 %.4f, NLL %.4f", b.Scheme, b.BitsPerWeight, b.KLMean, b.Top1Agreement, b.NLL)
			within := func(name string, got, want, tol float64) {
				if math.Abs(got-want) > tol {
					t.Errorf("%s %.5g, reference %.5g (tolerance %.2g)", name, got, want, tol)
				}
			}
			within("bits/weight", b.BitsPerWeight, c.bits, 0.005)
			within("KL", b.KLMean, c.kl, max(c.klAbs, 0.02*c.kl))
			within("top-1 agreement", b.Top1Agreement, c.agree, 0.02*c.agree)
			within("NLL", b.NLL, c.nll, 0.02*c.nll)
			if !b.CompressedWins {
				t.Errorf("a model at 1 bit and KL 0 must win")
			}
		})
	}
}

// TestAutoBaselineIsNotLarger checks that the automatic baseline is the
// largest standard scheme that stores no more bits per weight than the
// file, and the smallest when every one stores more.
func TestAutoBaselineIsNotLarger(t *testing.T) {
	orig, err := model.LoadDense(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	ws := weights(orig)
	size := func(name string) float64 { return quant.Measure(ws, StandardSchemes[name]).BitsPerWeight() }
	for _, tc := range []struct {
		bits float64
		want string
	}{
		{17.6, "int8"},
		{size("int8"), "int8"},
		{size("int8") - 1e-9, "int4"},
		{size("int4") - 1e-9, "int4/g64"},
		{(size("int3") + size("int4/g128")) / 2, "int3"},
		{size("int2/g128") - 1e-9, "int2/g128"},
		{0.5, "int2/g128"},
	} {
		got, err := chooseBaseline(BaselineAuto, orig, tc.bits)
		if err != nil || got != tc.want {
			t.Errorf("%.4f bits: %q, %v; want %q", tc.bits, got, err, tc.want)
		}
	}
}
