package verify

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Baseline is the same-size reference of a report: the original with every
// 2-D tensor rounded to nearest in a standard scheme (no calibration, no
// training; everything else in F32), measured on the same data.
type Baseline struct {
	Scheme        string  `json:"scheme"`
	BitsPerWeight float64 `json:"bits_per_weight"`
	KLMean        float64 `json:"kl_mean"`
	Top1Agreement float64 `json:"top1_agreement"`
	NLL           float64 `json:"nll,omitempty"`
	// Automatic is set when the scheme was chosen as the largest standard
	// one not above the compressed model's size.
	Automatic bool `json:"automatic,omitempty"`
	// CompressedWins is true when the compressed model is no further from
	// the original (mean KL) than the baseline and, unless the baseline
	// was chosen automatically (and so stores no more than the file), no
	// larger in bits per original weight.
	CompressedWins bool `json:"compressed_wins"`
}

// Baseline choices of Options.Baseline.
const (
	BaselineAuto = "auto"
	BaselineNone = "none"
)

// StandardSchemes are the baselines verify measures, by name: int8 with
// one scale per row, int4, int3 and int2 in groups of 32 (and, named
// "int4/g64" and so on, of 64 and 128), all with symmetric codes and F16
// scales (the usual reference convention).
var StandardSchemes = map[string]quant.Scheme{
	"int8": {Bits: 8},
	"int4": {Bits: 4, GroupSize: 32}, "int4/g64": {Bits: 4, GroupSize: 64}, "int4/g128": {Bits: 4, GroupSize: 128},
	"int3": {Bits: 3, GroupSize: 32}, "int3/g64": {Bits: 3, GroupSize: 64}, "int3/g128": {Bits: 3, GroupSize: 128},
	"int2": {Bits: 2, GroupSize: 32}, "int2/g64": {Bits: 2, GroupSize: 64}, "int2/g128": {Bits: 2, GroupSize: 128},
}

// standardOrder lists StandardSchemes from the largest to the smallest.
var standardOrder = []string{"int8", "int4", "int4/g64", "int4/g128", "int3", "int3/g64", "int3/g128", "int2", "int2/g64", "int2/g128"}

// BitsPerWeight returns the bits the compressed model stores per weight of
// the original (params original weights): a VLoRA file's tensors by their
// storage (vlora.Manifest.BitsPerOriginalWeight), a dense model's bytes.
func BitsPerWeight(comp *model.Model, params int64) (float64, error) {
	if comp.VLoRA != nil {
		return comp.VLoRA.Manifest.BitsPerOriginalWeight()
	}
	if comp.Path != "" && model.IsVLoRA(comp.Path) {
		// A VLoRA file run as stored (model.Stored).
		mf, f, err := vlora.ReadManifest(comp.Path)
		if err != nil {
			return 0, err
		}
		f.Close()
		return mf.BitsPerOriginalWeight()
	}
	if params == 0 {
		return 0, nil
	}
	return float64(8*comp.StoredBytes) / float64(params), nil
}

// chooseBaseline returns the scheme name opt asks for: under "auto" (or
// "") the largest standard one that stores no more bits per weight than
// the file (the smallest when every one is larger), "" under "none".
func chooseBaseline(choice string, orig *model.Model, bits float64) (string, error) {
	switch choice {
	case BaselineNone:
		return "", nil
	case "", BaselineAuto:
		ws := weights(orig)
		best, bestBits := "", math.Inf(-1)
		for _, name := range standardOrder {
			b := quant.Measure(ws, StandardSchemes[name]).BitsPerWeight()
			if b <= bits && b > bestBits {
				best, bestBits = name, b
			}
		}
		if best == "" {
			best = standardOrder[len(standardOrder)-1]
		}
		return best, nil
	}
	if _, ok := StandardSchemes[choice]; !ok {
		return "", fmt.Errorf("%w: baseline %q (want auto, none, int8, int4, int3 or int2, or int4, int3 or int2 with /g64 or /g128)", formats.ErrInvalid, choice)
	}
	return choice, nil
}

// weights returns the parameters of m as quant weights sharing their
// storage, in name order.
func weights(m *model.Model) []quant.Weight {
	names := make([]string, 0, len(m.Net.Params))
	for n := range m.Net.Params {
		names = append(names, n)
	}
	slices.Sort(names)
	ws := make([]quant.Weight, len(names))
	for i, n := range names {
		p := m.Net.Params[n]
		ws[i] = quant.Weight{Name: n, Shape: p.Shape, Data: p.Data}
	}
	return ws
}

// RoundToNearest loads the original model dir again with every 2-D
// tensor rounded to nearest in scheme s (model.LoadDenseRounded: the
// rounded matrices kept as codes and scales, so the model takes about its
// rounded size in memory); it returns the model, which the caller closes,
// and its bits per weight.
func RoundToNearest(dir string, s quant.Scheme) (*model.Model, float64, error) {
	m, err := model.LoadDenseRounded(dir, s)
	if err != nil {
		return nil, 0, err
	}
	return m, quant.Measure(weights(m), s).BitsPerWeight(), nil
}

// baseline measures the baseline of rep (whose compressed model stores
// bits per original weight) on data and records it; it leaves rep alone
// when opt turns baselines off or the original has no directory to load
// again or no logits.
func baseline(ctx context.Context, rep *Report, orig *model.Model, data *dataset.Dataset, opt params) error {
	if rep.BitsPerWeight == nil || orig.Path == "" || rep.KLMean == nil {
		return nil
	}
	name, err := chooseBaseline(opt.Baseline, orig, *rep.BitsPerWeight)
	if err != nil || name == "" {
		return err
	}
	rtn, bits, err := RoundToNearest(orig.Path, StandardSchemes[name])
	if err != nil {
		return fmt.Errorf("baseline %s: %w", name, err)
	}
	defer rtn.Close()
	var b Report
	opt.Progress = nil
	if err := compare(ctx, &b, orig, rtn, data, opt); err != nil {
		return fmt.Errorf("baseline %s: %w", name, err)
	}
	bl := &Baseline{Scheme: StandardSchemes[name].String(), BitsPerWeight: bits, KLMean: *b.KLMean, Top1Agreement: *b.Top1Agreement}
	if b.NLLCompressed != nil {
		bl.NLL = *b.NLLCompressed
	}
	bl.Automatic = opt.Baseline == "" || opt.Baseline == BaselineAuto
	bl.CompressedWins = *rep.KLMean <= bl.KLMean && (bl.Automatic || *rep.BitsPerWeight <= bits)
	rep.Baseline = bl
	return nil
}
