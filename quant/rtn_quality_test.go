package quant_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/verify"
)

// weightsOf returns the parameters of m as quant weights sharing their
// storage, in name order.
func weightsOf(m *transformer.Model) []quant.Weight {
	names := make([]string, 0, len(m.Params))
	for n := range m.Params {
		names = append(names, n)
	}
	slices.Sort(names)
	ws := make([]quant.Weight, len(names))
	for i, n := range names {
		p := m.Params[n]
		ws[i] = quant.Weight{Name: n, Shape: p.Shape, Data: p.Data}
	}
	return ws
}

// TestRoundToNearestBytellama quantizes every 2-D tensor of bytellama by
// round to nearest and checks bits per weight, KL, top-1 agreement and NLL
// on the first 64 eval sequences against an independent PyTorch
// computation (../shared/reference/findings.md): within 2%, or within half
// the last printed digit where the reference gives only one significant
// digit. The reference groups w.reshape(-1, 32) as this package does, but
// quantizes with F32 scales; rounding the scales to F16, as a file stores
// them, moves KL by under 0.5%. The reference's convention is pinned down:
// per-row groups that restart at each row (down_proj has 344 columns) move
// the int3 KL by 2.4%, and codes in [-2^(b-1), 2^(b-1)-1] with scale
// max|x|/2^(b-1) would give int3 KL 0.161 and int2 KL 1.31.
func TestRoundToNearestBytellama(t *testing.T) {
	if testing.Short() {
		t.Skip("five evaluations of bytellama; skipped with -short")
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
		scheme               quant.Scheme
		bits, kl, agree, nll float64
		klAbs                float64 // absolute KL tolerance instead of 2%
	}{
		{quant.Scheme{Bits: 8}, 8.14, 0.0002, 0.994, 0.933, 0.00005},
		{quant.Scheme{Bits: 4}, 4.15, 0.0590, 0.896, 0.984, 0},
		{quant.Scheme{Bits: 4, GroupSize: 32}, 4.54, 0.0358, 0.921, 0.961, 0},
		{quant.Scheme{Bits: 3, GroupSize: 32}, 3.54, 0.2602, 0.803, 1.164, 0},
		{quant.Scheme{Bits: 2, GroupSize: 32}, 2.54, 4.647, 0.092, 5.426, 0},
	}
	for _, c := range cases {
		t.Run(c.scheme.String(), func(t *testing.T) {
			cp, err := model.LoadDense(dir)
			if err != nil {
				t.Fatal(err)
			}
			fp, err := quant.RoundToNearest(weightsOf(cp.Net), c.scheme)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verify.Compare(context.Background(), orig, cp, data, verify.Options{Batch: 8})
			if err != nil {
				t.Fatal(err)
			}
			bpw, kl, agree, nll := fp.BitsPerWeight(), *rep.KLMean, *rep.Top1Agreement, *rep.NLLCompressed
			t.Logf("%s: %.3f bits/weight, KL %.5f, top-1 agreement %.4f, NLL %.4f", c.scheme, bpw, kl, agree, nll)
			within := func(name string, got, want, tol float64) {
				if math.Abs(got-want) > tol {
					t.Errorf("%s %.5g, reference %.5g (tolerance %.2g)", name, got, want, tol)
				}
			}
			// The reference prints bits to 2 decimals: half a unit of the
			// last digit, well inside 2%.
			within("bits/weight", bpw, c.bits, 0.005)
			if c.klAbs > 0 {
				within("KL", kl, c.kl, c.klAbs)
			} else {
				within("KL", kl, c.kl, 0.02*c.kl)
			}
			within("top-1 agreement", agree, c.agree, 0.02*c.agree)
			within("NLL", nll, c.nll, 0.02*c.nll)
		})
	}
}
