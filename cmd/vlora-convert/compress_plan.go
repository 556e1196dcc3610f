package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/refit"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// planFlags select activation-aware initialisation and a parameter budget.
type planFlags struct {
	init         string
	target       float64
	calibSamples int
	bases        []string
	refit        bool
}

func init() {
	compressFlagHooks = append(compressFlagHooks, func(cmd *cobra.Command, f *compressFlags) {
		p := &f.plan
		fl := cmd.Flags()
		fl.StringVar(&p.init, "init", "plain", "increment initialisation: plain (SVD of the weights) or whitened (SVD in the space of the layer inputs on --data)")
		fl.Float64Var(&p.target, "target-params", 0, "store at most this fraction of the original's parameters; ranks and base modes are chosen per tensor (replaces --rank)")
		fl.IntVar(&p.calibSamples, "calib-samples", 128, "sequences of --data used for the Gram matrices of --init whitened")
		fl.BoolVar(&p.refit, "refit", false, "after the SVD, correct each increment's B in closed form, layer by layer, on the compressed model's own inputs (needs --data)")
		fl.StringSliceVar(&p.bases, "plan-bases", []string{"mean", "zero"}, "base modes --target-params chooses from, per tensor kind")
	})
}

// applyPlan fills opt.Grams, opt.Ranks and opt.SuffixBases as the plan
// flags ask.
func applyPlan(ctx context.Context, f *compressFlags, opt *convert.Options, log io.Writer) error {
	p := &f.plan
	switch p.init {
	case "plain":
	case "whitened":
		teacher, inputs, err := calibration(f)
		if err != nil {
			return err
		}
		if opt.Grams, err = calib.Grams(ctx, teacher.Model, inputs); err != nil {
			return err
		}
	default:
		return usagef("--init %q: want plain or whitened", p.init)
	}
	if p.target == 0 {
		return nil
	}
	var modes []vlora.BaseMode
	for _, b := range p.bases {
		m, err := vlora.ParseBaseMode(b)
		if err != nil {
			return usageError{err}
		}
		modes = append(modes, m)
	}
	plan, err := convert.PlanBudget(ctx, f.model, *opt, p.target, modes)
	if err != nil {
		return err
	}
	opt.SuffixBases, opt.Ranks = plan.SuffixBases, plan.Ranks
	if mode, same := uniform(plan.SuffixBases); same {
		opt.Base, opt.SuffixBases = mode, nil
	}
	fmt.Fprintf(log, "budget: %d of %d parameters (%.4f), relative truncation loss %.4f\n", plan.Stored, plan.Original, float64(plan.Stored)/float64(plan.Original), plan.Loss)
	for s, b := range plan.SuffixBases {
		fmt.Fprintf(log, "budget: %s base %s\n", s, b)
	}
	return nil
}

// calibration loads the original model and --calib-samples sequences of
// --data in batches of 16.
func calibration(f *compressFlags) (*verify.Loaded, []*transformer.Input, error) {
	if f.distill.data == "" {
		return nil, nil, usagef("--init whitened and --refit need --data")
	}
	teacher, err := verify.LoadModel(f.model)
	if err != nil {
		return nil, nil, err
	}
	data, err := verify.LoadData(f.distill.data, "", f.plan.calibSamples, f.distill.seqLen)
	if err != nil {
		return nil, nil, err
	}
	var inputs []*transformer.Input
	for i := 0; i < data.N; i += 16 {
		inputs = append(inputs, data.Batch(i, min(data.N, i+16)))
	}
	return teacher, inputs, nil
}

// applyRefit runs refit.Run on the written file when --refit is given.
func applyRefit(ctx context.Context, f *compressFlags, path string, log io.Writer) error {
	if !f.plan.refit {
		return nil
	}
	teacher, inputs, err := calibration(f)
	if err != nil {
		return err
	}
	vm, err := vlora.Load(path)
	if err != nil {
		return err
	}
	student, err := verify.FromVLoRA(vm, path)
	if err != nil {
		return err
	}
	n, err := refit.Run(ctx, teacher.Model, student.Model, vm, inputs, refit.DefaultDamping)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "refit: %d increments corrected\n", n)
	return vm.Save(path)
}

// uniform reports whether every suffix has the same base mode, and which.
func uniform(m map[string]vlora.BaseMode) (vlora.BaseMode, bool) {
	var first vlora.BaseMode
	for _, b := range m {
		if first == "" {
			first = b
		} else if b != first {
			return "", false
		}
	}
	return first, first != ""
}
