package main

import (
	"cmp"
	"context"

	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/recipe"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// planFlags select the plan of the compress command: the budget, the
// initialisation, the sensitivity pass and the refit. Their defaults are
// the default recipe's (package recipe), and each changes only what it
// names.
type planFlags struct {
	init         string
	target, bits float64
	bitsLowRank  bool
	rounding     string
	calibSamples int
	bases        []string
	refit        bool
	// sensitivity weighs each tensor's estimated loss by its measured
	// effect on the output before the final allocation.
	sensitivity bool
	// targetSet, basesSet and sensitivitySet record whether the flags
	// were given.
	targetSet, basesSet, sensitivitySet, initSet, roundingSet bool
}

// Defaults of the default recipe, as the flags show them.
const (
	defaultTargetParams = recipe.DefaultTargetParams
	defaultAugment      = recipe.DefaultAugment
)

// addFlags registers the plan flags.
func (p *planFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&p.init, "init", string(recipe.InitWhitened), "increment initialisation: whitened (SVD in the space of the layer inputs on the calibration data) or plain (SVD of the weights)")
	fl.Float64Var(&p.target, "target-params", defaultTargetParams, "store at most this fraction of the original's parameters, ranks and base modes chosen per tensor (off with --target-bits, --rank or --energy)")
	fl.Float64Var(&p.bits, "target-bits", 0, "store at most this many bits per original weight (whole file, as inspect counts them): every 2-D tensor dense in float or at 8, 4, 3 or 2 bits (groups of 32, 64 or 128), chosen per tensor by its measured sensitivity; quantization-aware distillation at the plan (replaces --target-params)")
	fl.BoolVar(&p.bitsLowRank, "bits-lowrank", false, "with --target-bits: also offer each layer tensor low rank, with a mean base per compound or none (factors and bases float, int8 or int4); off by default, where it measured worse")
	fl.StringVar(&p.rounding, "rounding", string(recipe.RoundingGPTQ), "with --target-bits: first values of the quantized layer tensors, gptq (Hessian-aware rounding on the calibration inputs, round to nearest's scales) or rtn (round to nearest); quantization-aware distillation starts from them")
	fl.IntVar(&p.calibSamples, "calib-samples", recipe.DefaultCalibSamples, "calibration sequences of the whitened initialisation, the sensitivity pass and the refit: the first N of --data, or N sampled from the original")
	fl.BoolVar(&p.refit, "refit", true, "after the SVD, correct each increment's B in closed form, layer by layer, on the compressed model's own inputs")
	fl.BoolVar(&p.sensitivity, "plan-sensitivity", true, "with a budget: measure how much each tensor's approximation alone moves the original's output (KL on the calibration data), and allocate with every tensor's loss weighted by that sensitivity; one pass over the calibration data per tensor, skipped below 1,024 output positions")
	fl.StringSliceVar(&p.bases, "plan-bases", []string{"mean", "zero"}, "base modes --target-params chooses from, per tensor kind (default: --base when given, else mean and zero)")
}

// complete records which flags were given and turns the budget off where
// another flag names the ranks.
func (p *planFlags) complete(fl *pflag.FlagSet) {
	p.targetSet, p.basesSet, p.sensitivitySet = fl.Changed("target-params"), fl.Changed("plan-bases"), fl.Changed("plan-sensitivity")
	p.initSet, p.roundingSet = fl.Changed("init"), fl.Changed("rounding")
	if !p.targetSet && (fl.Changed("target-bits") || fl.Changed("rank") || fl.Changed("energy")) {
		p.target = 0
	}
}

// validate checks the plan flags.
func (p *planFlags) validate(rankSet bool) error {
	if _, err := recipe.ParseInit(p.init); err != nil {
		return usagef("--init %q: want plain or whitened", p.init)
	}
	if p.targetSet && p.bits != 0 {
		return usagef("--target-params and --target-bits are exclusive")
	}
	if (p.targetSet || p.bits != 0) && rankSet {
		return usagef("a budget (--target-params, --target-bits) chooses the ranks: it excludes --rank and --energy")
	}
	if _, err := recipe.ParseRounding(p.rounding); err != nil {
		return usagef("--rounding %q: want gptq or rtn", p.rounding)
	}
	if p.roundingSet && p.bits == 0 {
		return usagef("--rounding needs --target-bits")
	}
	if p.bitsLowRank && p.bits == 0 {
		return usagef("--bits-lowrank needs --target-bits")
	}
	if p.sensitivitySet && p.sensitivity && p.target == 0 && p.bits == 0 {
		return usagef("--plan-sensitivity needs a budget (--target-params or --target-bits)")
	}
	err := firstError(floatRange("target-params", p.target, 0, 1, false), intRange("calib-samples", p.calibSamples, 1, maxSamples))
	if err != nil {
		return err
	}
	if p.bits != 0 {
		if err := floatRange("target-bits", p.bits, 1, 32, false); err != nil {
			return err
		}
	}
	for _, b := range p.bases {
		if _, err := vlora.ParseBaseMode(b); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// options fills the plan fields of the recipe's options.
func (p *planFlags) options(o *recipe.Options) {
	o.TargetParams, o.TargetBits, o.BitsLowRank = p.target, p.bits, p.bitsLowRank
	o.Init, o.NoRefit, o.NoSensitivity = recipe.Init(p.init), !p.refit, !p.sensitivity
	o.Rounding = recipe.Rounding(p.rounding)
	if !p.initSet {
		// The default falls back to the plain initialisation, with a
		// note, for a model that cannot be calibrated.
		o.Init = ""
	}
	o.CalibSamples = p.calibSamples
	if p.basesSet {
		o.PlanBases = nil
		for _, b := range p.bases {
			m, _ := vlora.ParseBaseMode(b) // checked by validate
			o.PlanBases = append(o.PlanBases, m)
		}
	}
}

// calibrationData loads the first samples sequences of --data for the
// recipe's calibration; nil without --data (the recipe samples them from
// the original).
func calibrationData(ctx context.Context, teacher *model.Model, d *distillFlags, samples int) (*dataset.Dataset, error) {
	if d.data == "" {
		return nil, nil
	}
	return dataset.Load(ctx, d.data, dataset.LoadOptions{Samples: samples, SeqLen: d.seqLen,
		MaxSeqLen: teacher.Config.MaxPositions, TokenizerPath: cmp.Or(d.tokenizer, teacher.Path),
		TextField: d.textField, Stride: d.stride, Preprocessor: teacher.Path})
}
