package recipe

import (
	"context"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestComplete checks that every field left zero takes the default
// recipe's choice, and a field that is set changes only what it names.
func TestComplete(t *testing.T) {
	meanZero := []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero}
	for _, tc := range []struct {
		name   string
		in     Options
		target float64
		bases  []vlora.BaseMode
	}{
		{"zero: the default budget", Options{}, DefaultTargetParams, meanZero},
		{"a parameter budget", Options{TargetParams: 0.4}, 0.4, meanZero},
		{"a bit budget replaces the parameter budget", Options{TargetBits: 3}, 0, meanZero},
		{"a rank replaces the budget", Options{Convert: convert.Options{Rank: 8}}, 0, meanZero},
		{"an energy replaces the budget", Options{Convert: convert.Options{Energy: 0.9}}, 0, meanZero},
		{"a base is the budget's one mode", Options{Convert: convert.Options{Base: vlora.BaseMean}}, DefaultTargetParams, []vlora.BaseMode{vlora.BaseMean}},
		{"plan bases win over the base", Options{Convert: convert.Options{Base: vlora.BaseMean}, PlanBases: []vlora.BaseMode{vlora.BaseZero}}, DefaultTargetParams, []vlora.BaseMode{vlora.BaseZero}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.in
			if err := o.Complete(); err != nil {
				t.Fatal(err)
			}
			if o.TargetParams != tc.target || !reflect.DeepEqual(o.PlanBases, tc.bases) {
				t.Errorf("target %v bases %v, want %v %v", o.TargetParams, o.PlanBases, tc.target, tc.bases)
			}
			if o.CalibSamples != DefaultCalibSamples || o.Distill.Train != DefaultTrain || o.Log == nil {
				t.Errorf("defaults not filled: %+v", o)
			}
			if o.whitened() != (tc.in.Convert.Energy == 0) || o.NoRefit || o.NoSensitivity {
				t.Errorf("whitened %v, refit %v, sensitivity %v", o.whitened(), !o.NoRefit, !o.NoSensitivity)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	int4 := vlora.UniformPlan(quant.Scheme{Bits: 4, GroupSize: 32})
	for _, tc := range []struct {
		name string
		in   Options
	}{
		{"no model", Options{Out: "o"}},
		{"two budgets", Options{TargetParams: 0.5, TargetBits: 3}},
		{"parameter target above 1", Options{TargetParams: 1.5}},
		{"bit target below the least", Options{TargetBits: 0.5}},
		{"bit target above 32", Options{TargetBits: 33}},
		{"budget and rank", Options{TargetBits: 3, Convert: convert.Options{Rank: 4}}},
		{"bit budget and a quantization plan", Options{TargetBits: 3, Storage: &int4}},
		{"whitened with an energy", Options{Init: InitWhitened, Convert: convert.Options{Energy: 0.9}}},
		{"unknown initialisation", Options{Init: "svd"}},
		{"unknown rounding", Options{TargetBits: 3, Rounding: "nearest"}},
		{"unknown base mode", Options{PlanBases: []vlora.BaseMode{"last"}}},
		{"invalid storage", Options{Storage: &vlora.QuantPlan{Factors: quant.Scheme{Bits: 9}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.in
			if o.Model == "" && tc.name != "no model" {
				o.Model = "m"
			}
			if o.Out == "" {
				o.Out = "o"
			}
			o.Log = io.Discard
			if err := o.Complete(); err != nil {
				t.Fatal(err)
			}
			if err := o.Validate(); !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("Validate: %v, want formats.ErrInvalid", err)
			}
		})
	}
	ok := Options{Model: "m", Out: "o", TargetBits: 3.5}
	if err := ok.Complete(); err != nil {
		t.Fatal(err)
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

// TestBitsLowRankRuns runs the recipe under a bit budget with the whole
// menu (low rank, mean bases) and a short quantization-aware distillation,
// at several targets, and checks that each file stores what its plan
// counted, within the target, with the plan's base modes.
func TestBitsLowRankRuns(t *testing.T) {
	const dir = "../testdata/golden/llama-gqa-untied"
	ctx := context.Background()
	teacher, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	train, err := dataset.Sample(ctx, teacher, 8, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []float64{2.5, 4} {
		res, err := Run(ctx, Options{
			Model: dir, Out: t.TempDir(), Teacher: teacher, Convert: convert.Options{CompoundSize: 2},
			TargetBits: target, BitsLowRank: true, CalibSamples: 4, CalibSeqLen: 16,
			Train: train, Distill: distill.Options{Steps: 2, Batch: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Plan.Bits
		bits, err := res.Manifest.BitsPerOriginalWeight()
		if err != nil {
			t.Fatal(err)
		}
		if bits > target || math.Abs(bits-p.BitsPerWeight()) > 1e-12 {
			t.Errorf("target %v: file %.6f bits per weight, plan %.6f", target, bits, p.BitsPerWeight())
		}
		for s, mode := range p.SuffixBases {
			if got := res.Manifest.BaseFor(s); got != mode {
				t.Errorf("target %v: %s base %s, plan %s", target, s, got, mode)
			}
		}
		lowRank := 0
		for _, o := range p.Choices {
			if !o.Dense {
				lowRank++
			}
		}
		t.Logf("target %v: %.4f bits, %d of %d tensors low rank, bases %v", target, bits, lowRank, len(p.Choices), p.SuffixBases)
	}
}
