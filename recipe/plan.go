package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// SensitivityProbe is the scheme the bit budget's sensitivity pass rounds
// each tensor to, alone, to measure its effect on the output.
var SensitivityProbe = quant.Scheme{Bits: 3, GroupSize: 32, Full: true}

// plan fills opt.Ranks, opt.SuffixBases (and opt.Base) as the budget
// says, with the sensitivity pass unless NoSensitivity; nil without a
// budget.
func (o *Options) plan(ctx context.Context, cal *calibration, opt *convert.Options) (*Plan, error) {
	switch {
	case o.TargetBits != 0:
		return o.planBits(ctx, cal, opt)
	case o.TargetParams != 0:
		return o.planParams(ctx, cal, opt)
	}
	return nil, nil
}

// planParams spends the parameter budget: a first allocation by
// truncation loss, then (sensitivity pass) an allocation with every
// tensor's loss weighted by its measured KL per unit of loss.
func (o *Options) planParams(ctx context.Context, cal *calibration, opt *convert.Options) (*Plan, error) {
	pl, err := convert.NewPlanner(ctx, o.Model, *opt, o.PlanBases)
	if err != nil {
		return nil, err
	}
	apply := func(w map[string]float64) (*convert.BudgetPlan, error) {
		p, err := pl.Plan(o.TargetParams, w)
		if err != nil {
			return nil, err
		}
		opt.SuffixBases, opt.Ranks = p.SuffixBases, p.Ranks
		if mode, same := uniform(p.SuffixBases); same {
			opt.Base, opt.SuffixBases = mode, nil
		}
		return p, nil
	}
	p, err := apply(nil)
	if err != nil {
		return nil, err
	}
	out := &Plan{Params: p}
	if !o.NoSensitivity && cal != nil {
		w, err := o.sensitivityWeights(ctx, cal, *opt)
		if err != nil {
			return nil, fmt.Errorf("plan sensitivity: %w", err)
		}
		if w != nil {
			opt.LossWeights, out.Weights = w, w
			if out.Params, err = apply(w); err != nil {
				return nil, err
			}
		}
	}
	p = out.Params
	fmt.Fprintf(o.Log, "budget: %d of %d parameters (%.4f), relative truncation loss %.4f\n", p.Stored, p.Original, float64(p.Stored)/float64(p.Original), p.Loss)
	for _, s := range sortedKeys(p.SuffixBases) {
		fmt.Fprintf(o.Log, "budget: %s base %s\n", s, p.SuffixBases[s])
	}
	return out, nil
}

// planBits spends the bit budget (convert.NewBitPlanner), with every tensor's
// loss weighted by its measured sensitivity: the KL of the output with the
// tensor alone rounded to SensitivityProbe, per unit of that rounding's
// relative loss.
func (o *Options) planBits(ctx context.Context, cal *calibration, opt *convert.Options) (*Plan, error) {
	bp, err := convert.NewBitPlanner(ctx, o.Model, *opt, o.BitsLowRank)
	if err != nil {
		return nil, err
	}
	out := &Plan{}
	if !o.NoSensitivity && cal != nil {
		w, err := o.probeWeights(ctx, cal, bp.Tensors(), opt)
		if err != nil {
			return nil, fmt.Errorf("plan sensitivity: %w", err)
		}
		out.Weights = w
	}
	if out.Bits, err = bp.PlanBits(o.TargetBits, out.Weights); err != nil {
		return nil, err
	}
	opt.Base, opt.SuffixBases, opt.Ranks = vlora.BaseZero, out.Bits.SuffixBases, out.Bits.Ranks()
	opt.Rank, opt.Energy = 0, 0
	fmt.Fprintf(o.Log, "budget: %.4f bits per weight (%d bits for %d weights), estimated loss %.4g\n",
		out.Bits.BitsPerWeight(), out.Bits.Bits, out.Bits.Original, out.Bits.Loss)
	return out, nil
}

// probeWeights measures each named tensor's sensitivity (see planBits) and
// returns the weights normalised to a geometric mean of 1; nil, with a
// note, when the calibration data is too small.
func (o *Options) probeWeights(ctx context.Context, cal *calibration, names []string, opt *convert.Options) (map[string]float64, error) {
	teacher := cal.teacher.Net
	loss := map[string]float64{}
	probes := map[string][]float32{}
	var measured []string
	for _, name := range names {
		p, ok := teacher.Params[name]
		if !ok || len(p.Shape) != 2 {
			continue
		}
		rows, cols := p.Shape[0], p.Shape[1]
		q := make([]float32, len(p.Data))
		quant.FakeQuant(q, p.Data, rows, cols, SensitivityProbe)
		e, err := calib.RelativeError(p.Data, q, rows, cols, opt.Grams[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if e > 0 {
			measured = append(measured, name)
			loss[name], probes[name] = e, q
		}
	}
	t0 := time.Now()
	kl, err := calib.Sensitivity(ctx, teacher, cal.inputs, measured, func(name string) ([]float32, error) { return probes[name], nil })
	if errors.Is(err, calib.ErrTooFewRows) {
		fmt.Fprintf(o.Log, "sensitivity: skipped (%v); bits allocated by estimated loss alone\n", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "sensitivity: %d tensors measured at %s on %s in %.1f s\n", len(measured), SensitivityProbe, cal.source, time.Since(t0).Seconds())
	sort.Strings(measured)
	var g float64
	for _, n := range measured {
		g += math.Log(max(kl[n], 1e-9) / loss[n])
	}
	g /= float64(max(len(measured), 1))
	out := map[string]float64{}
	for _, n := range measured {
		out[n] = math.Exp(math.Log(max(kl[n], 1e-9)/loss[n]) - g)
	}
	return out, nil
}

// sensitivityWeights compresses the model once with the plan in opt (into a
// temporary directory beside the output, removed afterwards), measures
// the end-to-end KL of each low-rank tensor's approximation on its own
// (calib.Sensitivity) and returns, per tensor, that KL per unit of its
// relative truncation loss (calib.RelativeError), normalised to a geometric
// mean of 1: the weights of the second allocation. Dense increments, which
// lose nothing, take the geometric mean of their kind's measured tensors,
// or 1. Calibration data with fewer than calib.MinSensitivityRows output
// rows gives no weights (nil), with a note on the log.
func (o *Options) sensitivityWeights(ctx context.Context, cal *calibration, opt convert.Options) (map[string]float64, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(o.Out, ".vlora-plan-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	opt.KeepModel, opt.Progress = true, nil
	res, err := convert.Compress(ctx, o.Model, tmp, opt)
	if err != nil {
		return nil, err
	}
	vm, teacher := res.Model, cal.teacher.Net
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
	kl, err := calib.Sensitivity(ctx, teacher, cal.inputs, names, approx)
	if errors.Is(err, calib.ErrTooFewRows) {
		fmt.Fprintf(o.Log, "sensitivity: skipped (%v); ranks allocated by truncation loss alone\n", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "sensitivity: %d tensors measured on %s in %.1f s\n", len(names), cal.source, time.Since(t0).Seconds())
	return sensitivityByTensor(vm, kl, loss, o.Log), nil
}

// sensitivityByTensor turns the measured KL and relative loss of each
// tensor into loss weights with a geometric mean of 1, fills the tensors
// without a measurement from their kind, and logs each kind's mean.
func sensitivityByTensor(vm *vlora.Model, kl, loss map[string]float64, log io.Writer) map[string]float64 {
	// Sorted names make the sums, and so the plan, the same on every run.
	names := sortedKeys(kl)
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
	for _, s := range sortedKeys(logs) {
		fmt.Fprintf(log, "sensitivity: %s %.3g× the mean (%d tensors measured)\n", s, math.Exp(mean(logs[s])-g), len(logs[s]))
	}
	return out
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

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
