package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/refit"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// planFlags select activation-aware initialisation, a parameter budget and
// the closed-form refit of the compress command.
type planFlags struct {
	init         string
	target       float64
	calibSamples int
	bases        []string
	refit        bool
	// sensitivity weighs each tensor's truncation loss by its measured
	// effect on the output before the final allocation.
	sensitivity bool
}

// addFlags registers the plan flags.
func (p *planFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&p.init, "init", "plain", "increment initialisation: plain (SVD of the weights) or whitened (SVD in the space of the layer inputs on the calibration data)")
	fl.Float64Var(&p.target, "target-params", 0, "store at most this fraction of the original's parameters; ranks and base modes are chosen per tensor (replaces --rank)")
	fl.IntVar(&p.calibSamples, "calib-samples", 64, "calibration sequences for --init whitened and --refit: the first N of --data, or N sampled from the original")
	fl.BoolVar(&p.refit, "refit", false, "after the SVD, correct each increment's B in closed form, layer by layer, on the compressed model's own inputs")
	fl.BoolVar(&p.sensitivity, "plan-sensitivity", false, "with --target-params: compress once, measure how much each tensor's approximation alone moves the original's output (KL on the calibration data), and allocate again with every tensor's loss weighted by that sensitivity; one pass over the calibration data per low-rank tensor, skipped below 1,024 output positions (on in the default recipe)")
	fl.StringSliceVar(&p.bases, "plan-bases", []string{"mean", "zero"}, "base modes --target-params chooses from, per tensor kind")
}

// recipeFlags choose a compression recipe; without any of them compress
// uses the default recipe (useDefaultRecipe).
var recipeFlags = []string{"rank", "energy", "base", "target-params", "init", "refit", "plan-bases"}

// Defaults of the default recipe.
const (
	defaultTargetParams = 0.55
	defaultAugment      = 1024
)

// useDefaultRecipe selects the default recipe when no recipe flag was
// given: the parameter budget defaultTargetParams spent over mean and zero
// bases and weighted by each tensor's measured sensitivity, whitened
// initialisation, the refit, and distillation of every
// tensor on --data plus defaultAugment continuations of its sequences by
// the original (language models; unless --train or --augment say
// otherwise). It reports whether it did.
func (o *compressOptions) useDefaultRecipe(cmd *cobra.Command) bool {
	fl := cmd.Flags()
	for _, f := range recipeFlags {
		if fl.Changed(f) {
			return false
		}
	}
	o.plan.target, o.plan.init, o.plan.refit = defaultTargetParams, "whitened", true
	if !fl.Changed("plan-sensitivity") {
		o.plan.sensitivity = true
	}
	if !fl.Changed("train") {
		o.distill.train = string(distill.TrainAll)
	}
	if !fl.Changed("augment") {
		o.distill.augment, o.distill.augmentIfLM = defaultAugment, true
	}
	return true
}

// errNoCalibration reports a model whose calibration data cannot be
// sampled.
var errNoCalibration = fmt.Errorf("%w: calibration needs --data for a model that does not generate text", formats.ErrInvalid)

// calibrate loads the calibration data when the plan needs it. For the
// default recipe a model that cannot be calibrated (no data and no text
// generation, or an architecture the forward pass lacks) falls back to the
// plain initialisation without refit, with a note.
// The teacher of data, when data is not nil, is reused.
func (o *compressOptions) calibrate(ctx context.Context, data *preparedData) error {
	if !o.plan.needsCalibration() {
		return nil
	}
	var teacher *model.Model
	if data != nil {
		teacher = data.teacher
	}
	var err error
	o.cal, err = loadCalibration(ctx, o.model, teacher, &o.distill, o.plan.calibSamples, o.seed)
	if err != nil && o.recipe && (errors.Is(err, errNoCalibration) || errors.Is(err, model.ErrUnsupportedArchitecture)) {
		fmt.Fprintf(o.ErrOut, "note: %v; plain initialisation without refit\n", err)
		o.plan.init, o.plan.refit = "plain", false
		return nil
	}
	return err
}

// validate checks the plan flags.
func (p *planFlags) validate() error {
	if p.init != "plain" && p.init != "whitened" {
		return usagef("--init %q: want plain or whitened", p.init)
	}
	if p.sensitivity && p.target == 0 {
		return usagef("--plan-sensitivity needs --target-params")
	}
	err := firstError(floatRange("target-params", p.target, 0, 1, false), intRange("calib-samples", p.calibSamples, 1, maxSamples))
	if err != nil {
		return err
	}
	for _, b := range p.bases {
		if _, err := vlora.ParseBaseMode(b); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// needsCalibration reports whether the plan runs the original model.
func (p *planFlags) needsCalibration() bool {
	return p.init == "whitened" || p.refit || p.sensitivity
}

// calibration is the original model and the calibration batches, loaded
// once and shared by the whitened initialisation, the refit and the
// distillation stage.
type calibration struct {
	teacher *model.Model
	inputs  []*transformer.Input
	source  string
	// shared is set when teacher is also the distillation stage's teacher.
	shared bool
}

// loadCalibration loads the original and the first samples sequences of
// data, or samples them from the original when data is empty, in batches
// of 16. teacher, when not nil, is the original already loaded.
func loadCalibration(ctx context.Context, modelDir string, teacher *model.Model, d *distillFlags, samples int, seed uint64) (*calibration, error) {
	var err error
	shared := teacher != nil
	if teacher == nil {
		if teacher, err = model.LoadDense(modelDir); err != nil {
			return nil, err
		}
	}
	var data *dataset.Dataset
	switch {
	case d.data == "" && !teacher.IsCausalLM():
		return nil, errNoCalibration
	case d.data != "":
		data, err = dataset.Load(ctx, d.data, dataset.LoadOptions{Samples: samples, SeqLen: d.seqLen,
			MaxSeqLen: teacher.Config.MaxPositions, TokenizerPath: cmp.Or(d.tokenizer, teacher.Path),
			TextField: d.textField, Stride: d.stride, Preprocessor: teacher.Path})
	default:
		t := dataset.SeqLen(d.seqLen, dataset.DefaultSeqLen, teacher.Config.MaxPositions)
		data, err = dataset.Sample(ctx, teacher, samples, t, seed)
	}
	if err != nil {
		return nil, fmt.Errorf("calibration data: %w", err)
	}
	c := &calibration{teacher: teacher, source: data.Source, shared: shared}
	for i := 0; i < data.N; i += 16 {
		c.inputs = append(c.inputs, data.Batch(i, min(data.N, i+16)))
	}
	return c, nil
}

// apply fills opt.Grams, opt.Ranks and opt.SuffixBases as the plan flags
// ask; cal is nil unless the plan needs calibration. The budget is chosen
// by pl, or by a planner built here when pl is nil; the planner is
// returned for the next allocation of the same checkpoint (nil without
// --target-params).
func (p *planFlags) apply(ctx context.Context, modelDir string, cal *calibration, opt *convert.Options, pl *convert.Planner, log io.Writer) (*convert.Planner, error) {
	if p.init == "whitened" && opt.Grams == nil {
		var err error
		if opt.Grams, err = calib.Grams(ctx, cal.teacher.Net, cal.inputs); err != nil {
			return nil, err
		}
	}
	if p.target == 0 {
		return nil, nil
	}
	if pl == nil {
		var modes []vlora.BaseMode
		for _, b := range p.bases {
			m, _ := vlora.ParseBaseMode(b) // checked by validate
			modes = append(modes, m)
		}
		var err error
		if pl, err = convert.NewPlanner(ctx, modelDir, *opt, modes); err != nil {
			return nil, err
		}
	}
	plan, err := pl.Plan(p.target, opt.LossWeights)
	if err != nil {
		return nil, err
	}
	opt.SuffixBases, opt.Ranks = plan.SuffixBases, plan.Ranks
	if mode, same := uniform(plan.SuffixBases); same {
		opt.Base, opt.SuffixBases = mode, nil
	}
	fmt.Fprintf(log, "budget: %d of %d parameters (%.4f), relative truncation loss %.4f\n", plan.Stored, plan.Original, float64(plan.Stored)/float64(plan.Original), plan.Loss)
	for s, b := range plan.SuffixBases {
		fmt.Fprintf(log, "budget: %s base %s\n", s, b)
	}
	return pl, nil
}

// applyRefit corrects the increments of vm (refit.Run) and rewrites path.
func applyRefit(ctx context.Context, cal *calibration, vm *vlora.Model, path string, log io.Writer) error {
	student, err := model.FromVLoRA(vm)
	if err != nil {
		return fmt.Errorf("%w: %v", distill.ErrUnsupported, err)
	}
	n, err := refit.Run(ctx, cal.teacher.Net, student.Net, vm, cal.inputs, refit.DefaultDamping)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "refit: %d increments corrected on %s\n", n, cal.source)
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

// sensitivityWeights compresses the model once with the plan in opt (into a
// temporary directory beside the output, removed afterwards), measures
// the end-to-end KL of each low-rank tensor's approximation on its own
// (calib.Sensitivity) and returns, per tensor, that KL per unit of its
// relative truncation loss (calib.RelativeError), normalised to a geometric
// mean of 1: the weights of the second allocation. Dense increments, which
// lose nothing, take the geometric mean of their kind's measured tensors,
// or 1. Calibration data with fewer than calib.MinSensitivityRows output
// rows gives no weights (nil), with a note on log.
func (o *compressOptions) sensitivityWeights(ctx context.Context, opt convert.Options, log io.Writer) (map[string]float64, error) {
	tmp, err := os.MkdirTemp(o.work, ".vlora-plan-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	opt.KeepModel, opt.Progress = true, nil
	res, err := convert.Compress(ctx, o.model, tmp, opt)
	if err != nil {
		return nil, err
	}
	vm, teacher := res.Model, o.cal.teacher.Net
	var names []string
	loss := map[string]float64{}
	for _, inc := range vm.Manifest.Increments {
		if inc.Kind != vlora.KindLowRank {
			continue
		}
		name := vm.LayerName(inc.Layer, inc.Suffix)
		w, shape, err := vm.LayerWeight(inc.Layer, inc.Suffix)
		if err != nil {
			return nil, err
		}
		p, ok := teacher.Params[name]
		if !ok || len(shape) != 2 {
			continue
		}
		e, err := calib.RelativeError(p.Data, w, shape[0], shape[1], opt.Grams[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if e > 0 {
			names = append(names, name)
			loss[name] = e
		}
	}
	approx := func(name string) ([]float32, error) {
		l, s, _ := vm.SplitName(name)
		w, _, err := vm.LayerWeight(l, s)
		return w, err
	}
	t0 := time.Now()
	kl, err := calib.Sensitivity(ctx, teacher, o.cal.inputs, names, approx)
	if errors.Is(err, calib.ErrTooFewRows) {
		fmt.Fprintf(log, "sensitivity: skipped (%v); ranks allocated by truncation loss alone\n", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "sensitivity: %d tensors measured on %s in %.1f s\n", len(names), o.cal.source, time.Since(t0).Seconds())
	return sensitivityByTensor(vm, kl, loss, log), nil
}

// sensitivityByTensor turns the measured KL and relative loss of each
// tensor into loss weights with a geometric mean of 1, fills the tensors
// without a measurement from their kind, and logs each kind's mean.
func sensitivityByTensor(vm *vlora.Model, kl, loss map[string]float64, log io.Writer) map[string]float64 {
	// Sorted names make the sums, and so the plan, the same on every run.
	names := make([]string, 0, len(kl))
	for name := range kl {
		names = append(names, name)
	}
	sort.Strings(names)
	logs := map[string][]float64{}
	var all []float64
	ratio := map[string]float64{}
	for _, name := range names {
		r := max(kl[name], 1e-9) / loss[name]
		ratio[name] = r
		_, s, _ := vm.SplitName(name)
		logs[s] = append(logs[s], math.Log(r))
		all = append(all, math.Log(r))
	}
	mean := func(x []float64) float64 {
		var t float64
		for _, v := range x {
			t += v
		}
		return t / float64(max(len(x), 1))
	}
	g := mean(all)
	out := map[string]float64{}
	for _, inc := range vm.Manifest.Increments {
		if len(vm.OriginalShape(vm.LayerName(inc.Layer, inc.Suffix))) != 2 {
			continue
		}
		name := vm.LayerName(inc.Layer, inc.Suffix)
		if r, ok := ratio[name]; ok {
			out[name] = math.Exp(math.Log(r) - g)
		} else if ls := logs[inc.Suffix]; len(ls) > 0 {
			out[name] = math.Exp(mean(ls) - g)
		} else {
			out[name] = 1
		}
	}
	suffixes := make([]string, 0, len(logs))
	for s := range logs {
		suffixes = append(suffixes, s)
	}
	sort.Strings(suffixes)
	for _, s := range suffixes {
		fmt.Fprintf(log, "sensitivity: %s %.3g× the mean (%d tensors measured)\n", s, math.Exp(mean(logs[s])-g), len(logs[s]))
	}
	return out
}
