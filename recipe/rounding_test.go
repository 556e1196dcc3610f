package recipe

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

func TestParseRounding(t *testing.T) {
	for _, s := range []string{"gptq", "rtn"} {
		if r, err := ParseRounding(s); err != nil || string(r) != s {
			t.Errorf("ParseRounding(%q) = %q, %v", s, r, err)
		}
	}
	if _, err := ParseRounding("nearest"); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("ParseRounding(nearest): %v, want formats.ErrInvalid", err)
	}
}

// TestRoundingGPTQ runs a bit budget without distillation with each
// rounding on a tiny Llama and checks that GPTQ's start is what the file
// stores and what quantization-aware training's first refresh computes,
// bit for bit, that it keeps round to nearest's scales, and that its
// output error on the calibration inputs is below round to nearest's.
func TestRoundingGPTQ(t *testing.T) {
	ctx := context.Background()
	const dir = "../testdata/golden/llama-gqa-untied"
	teacher, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := dataset.Sample(ctx, teacher, 8, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	grams, err := calib.Grams(ctx, teacher.Net, []*transformer.Input{cal.Batch(0, 8)})
	if err != nil {
		t.Fatal(err)
	}
	run := func(r Rounding) *Result {
		res, err := Run(ctx, Options{Model: dir, Out: t.TempDir(), Teacher: teacher, TargetBits: 3.5,
			CalibSamples: 8, Calibration: cal, Rounding: r})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	g, r := run(RoundingGPTQ), run(RoundingRTN)
	stored, err := vlora.Load(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	var errG, errR float64
	rounded := 0
	for name, gram := range grams {
		l, s, _ := g.Model.SplitName(name)
		dn := vlora.DeltaName(l, s)
		tg, tr := g.Model.Tensors[dn], r.Model.Tensors[dn]
		sc, ok := g.Model.Manifest.Quant.SchemeOf(dn, tg.Shape)
		if !ok {
			continue
		}
		rows, cols := vlora.Matrix(tg.Shape)
		fq := make([]float32, len(tg.Data))
		quant.FakeQuant(fq, tg.Data, rows, cols, sc)
		for i, v := range stored.Tensors[dn].Data {
			if math.Float32bits(v) != math.Float32bits(tg.Data[i]) || math.Float32bits(fq[i]) != math.Float32bits(tg.Data[i]) {
				t.Fatalf("%s[%d]: start %v, stored %v, refreshed %v", dn, i, tg.Data[i], v, fq[i])
			}
		}
		qg, _ := quant.Quantize(tg.Data, rows, cols, sc)
		qr, _ := quant.Quantize(tr.Data, rows, cols, sc)
		for k := range qg.Scales {
			if qg.Scales[k] != qr.Scales[k] {
				t.Fatalf("%s: scale %d %#x, round to nearest %#x", dn, k, qg.Scales[k], qr.Scales[k])
			}
		}
		w := teacher.Net.Params[name].Data
		eg, err := calib.RelativeError(w, tg.Data, rows, cols, gram)
		if err != nil {
			t.Fatal(err)
		}
		// Without distillation the round-to-nearest run keeps float values
		// in memory, which the file stores rounded.
		rtn := make([]float32, len(tr.Data))
		quant.FakeQuant(rtn, tr.Data, rows, cols, sc)
		er, _ := calib.RelativeError(w, rtn, rows, cols, gram)
		errG += eg
		errR += er
		rounded++
	}
	if rounded == 0 {
		t.Fatal("no dense quantized layer tensor")
	}
	if !(errG < errR) {
		t.Errorf("summed relative output error: GPTQ %.4g, round to nearest %.4g", errG, errR)
	}
	t.Logf("%d tensors: summed relative output error GPTQ %.4g, round to nearest %.4g", rounded, errG, errR)
}
