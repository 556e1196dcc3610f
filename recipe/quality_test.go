package recipe

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestBitMenuTinyStories plans tinystories260K at 3.5 bits per weight
// with and without the low-rank options and with and without the
// sensitivity weights, rounds each plan to nearest (no training), and
// measures its KL on held-out sequences (the last 64 of the calibration
// file; the first 64 calibrate), beside uniform full-range int3/g32 and
// int4/g32. It requires the default plan (dense options, weighted) to
// beat uniform int3/g32, which stores more, and to be no worse than the
// menu with low rank: the measurement behind the default menu
// (docs/quality.md). VLORA_QUALITY only (a few minutes on 2 busy cores).
func TestBitMenuTinyStories(t *testing.T) {
	testenv.Quality(t)
	ctx := context.Background()
	dir := testenv.SharedModel(t, "tinystories260K")
	all, err := dataset.Load(ctx, testenv.Shared(t, "data/tinystories260K/calib.safetensors"), dataset.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const held = 64
	if all.N < 2*held {
		t.Fatalf("%d sequences, want at least %d", all.N, 2*held)
	}
	rows := func(i, j int) *dataset.Dataset {
		return &dataset.Dataset{N: j - i, T: all.T, IDs: all.IDs[i*all.T : j*all.T], Source: all.Source}
	}
	train, eval := rows(0, all.N-held), rows(all.N-held, all.N)
	teacher, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Model: dir, Out: t.TempDir(), TargetBits: 3.5, Teacher: teacher, Calibration: train}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	cal, err := o.calibrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opt := convert.Options{}
	if opt.Grams, err = calib.Grams(ctx, cal.teacher.Net, cal.inputs); err != nil {
		t.Fatal(err)
	}
	measure := func(name string, copt convert.Options, qp vlora.QuantPlan) float64 {
		copt.KeepModel = true
		res, err := convert.Compress(ctx, dir, filepath.Join(t.TempDir(), "v"), copt)
		if err != nil {
			t.Fatal(err)
		}
		res.Model.Manifest.Quant = &qp
		if err := res.Model.Save(res.Path); err != nil {
			t.Fatal(err)
		}
		comp, err := model.Load(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Compare(ctx, teacher, comp, eval, verify.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bits, _ := res.Model.Manifest.BitsPerOriginalWeight()
		t.Logf("%-32s %.4f bits  KL %.4f", name, bits, *rep.KLMean)
		return *rep.KLMean
	}
	kl := map[string]float64{}
	var w map[string]float64
	for _, lowRank := range []bool{false, true} {
		bp, err := convert.NewBitPlanner(ctx, dir, opt, lowRank)
		if err != nil {
			t.Fatal(err)
		}
		if w == nil {
			if w, err = o.probeWeights(ctx, cal, bp.Tensors(), &opt); err != nil || w == nil {
				t.Fatalf("sensitivity: %v, %v", w, err)
			}
		}
		for _, weighted := range []bool{true, false} {
			ww := w
			if !weighted {
				ww = nil
			}
			plan, err := bp.PlanBits(3.5, ww)
			if err != nil {
				t.Fatal(err)
			}
			copt := opt
			copt.Base, copt.SuffixBases, copt.Ranks = vlora.BaseZero, plan.SuffixBases, plan.Ranks()
			name := map[bool]string{false: "dense", true: "dense and low rank"}[lowRank] + map[bool]string{false: ", unweighted", true: ", weighted"}[weighted]
			kl[name] = measure(name, copt, plan.Quant())
		}
	}
	for _, s := range []string{"int3/g32/full", "int4/g32/full"} {
		sc, _ := quant.ParseScheme(s)
		kl[s] = measure("uniform "+s, convert.Options{CompoundSize: 1, Energy: 1}, vlora.UniformPlan(sc))
	}
	if kl["dense, weighted"] >= kl["int3/g32/full"] {
		t.Errorf("default plan KL %.4f, not below uniform int3/g32/full %.4f", kl["dense, weighted"], kl["int3/g32/full"])
	}
	if kl["dense, weighted"] > kl["dense and low rank, weighted"] {
		t.Errorf("default plan KL %.4f above the plan with low rank %.4f", kl["dense, weighted"], kl["dense and low rank, weighted"])
	}
}
