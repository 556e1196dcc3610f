// Package recipe is the default compression recipe as one call: the
// original is run on calibration sequences (Gram matrices of the linear
// layers' inputs), a budget in stored parameters or in bits per original
// weight is spent per tensor (weighted by each tensor's measured effect on
// the output), the SVD stage writes the file, the B factors are refitted
// layer by layer, and, when training data is given, the file is distilled
// against the original (quantization-aware when the plan stores quantized
// tensors).
//
// Every field of Options has a default, and a field changes only what it
// names: Options{Model: dir, Out: out} is the whole default recipe, and
// Options{..., TargetBits: 3.5} is the same recipe under a bit budget.
package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/calib"
	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/refit"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Defaults of the recipe.
const (
	// DefaultTargetParams is the parameter budget when neither a bit
	// budget nor a fixed rank or energy is asked for.
	DefaultTargetParams = 0.55
	// DefaultCalibSamples is the number of calibration sequences.
	DefaultCalibSamples = 64
	// DefaultAugment is the number of continuations of the training
	// sequences by the original that the command line adds to the
	// distillation data of language models.
	DefaultAugment = 1024
	// DefaultTrain is the set of tensors the recipe distills.
	DefaultTrain = distill.TrainAll
)

// Init is the initialisation of the increments.
type Init string

// Initialisations.
const (
	// InitWhitened truncates each increment in the space of its layer's
	// inputs on the calibration data (svd.Whitened); the default.
	InitWhitened Init = "whitened"
	// InitPlain truncates the increments of the weights themselves.
	InitPlain Init = "plain"
)

// ParseInit parses "whitened" or "plain".
func ParseInit(s string) (Init, error) {
	switch Init(s) {
	case InitWhitened, InitPlain:
		return Init(s), nil
	}
	return "", fmt.Errorf("%w: initialisation %q (want whitened or plain)", formats.ErrInvalid, s)
}

// Options configures Run. The zero value of every field is the default
// recipe's choice for it.
type Options struct {
	// Model is the original's directory; Out the output directory
	// (created; its VLoRA file replaced atomically).
	Model, Out string
	// Convert configures the SVD stage. Its Rank or Energy, when set,
	// replace the budget by that rank or energy for every tensor; its Base,
	// when set and PlanBases is empty, is the one base mode the budget
	// chooses from. Grams, Ranks, SuffixBases and LossWeights are filled
	// by the plan.
	Convert convert.Options
	// TargetParams is the parameter budget, a fraction of the original's
	// parameters in (0, 1]; TargetBits the budget in bits per original
	// weight of the whole file (as vlora.Manifest.BitsPerOriginalWeight
	// counts them), in [convert.MinTargetBits, 32]. At most one is set;
	// with neither, and neither Convert.Rank nor Convert.Energy,
	// TargetParams is DefaultTargetParams.
	TargetParams, TargetBits float64
	// Rounding is how the quantized tensors of a bit budget get their
	// first values (default RoundingGPTQ with calibration data).
	Rounding Rounding
	// GPTQ configures RoundingGPTQ.
	GPTQ quant.GPTQOptions
	// BitsLowRank adds low rank, with a mean base per compound or none
	// (factors and bases float, int8 or int4), to the options of a bit
	// budget (convert.NewBitPlanner).
	BitsLowRank bool
	// Init is the initialisation (default InitWhitened; the default falls
	// back to InitPlain, with a note, for a model that cannot be run or
	// calibrated).
	Init Init
	// NoRefit skips the closed-form refit of the B factors after the SVD.
	NoRefit bool
	// NoSensitivity skips the sensitivity pass: the budget is spent by
	// estimated loss alone.
	NoSensitivity bool
	// PlanBases are the base modes a parameter budget chooses from per
	// tensor kind (default Convert.Base when set, else mean and zero).
	PlanBases []vlora.BaseMode
	// CalibSamples is the number of calibration sequences (default
	// DefaultCalibSamples): the first of Calibration, or sampled from the
	// original when Calibration is nil.
	CalibSamples int
	// Calibration holds the calibration sequences (nil: sampled from the
	// original, language models only, CalibSeqLen tokens long, default
	// dataset.DefaultSeqLen).
	Calibration *dataset.Dataset
	CalibSeqLen int
	// Teacher, when set, is the original already loaded (model.LoadDense
	// of Model); it is then shared, not modified.
	Teacher *model.Model
	// Storage, when set, stores the file's 2-D tensors quantized per
	// family (with TargetBits the plan chooses per tensor instead). Without
	// distillation the file is rounded to nearest.
	Storage *vlora.QuantPlan
	// Train, when set, is the distillation data; Distill its options
	// (Train defaults to DefaultTrain). Without Train the file keeps the
	// SVD stage's initialisation (refitted).
	Train   *dataset.Dataset
	Distill distill.Options
	// Distiller, when set, runs the distillation stage instead of
	// distill.Run on Train: it is called with the original (nil when the
	// recipe has not loaded it) and the SVD
	// stage's result (refitted, in float, its manifest holding the
	// quantization plan to train for), and saves the file itself. The
	// command line uses it for its loss log, checkpoints and report.
	Distiller func(ctx context.Context, teacher *model.Model, res *convert.Result) error
	// Seed seeds sampled calibration data.
	Seed uint64
	// Log receives the plan and the notes (nil: discarded).
	Log io.Writer
}

// Result is what Run wrote.
type Result struct {
	*convert.Result
	// Plan is the budget's plan (nil without a budget).
	Plan *Plan
	// Distilled reports the distillation stage's result (nil when it did
	// not run).
	Distilled *distill.Result
}

// Plan is the budget a run spent.
type Plan struct {
	// Params is the parameter plan (with TargetParams).
	Params *convert.BudgetPlan
	// Bits is the bit plan (with TargetBits).
	Bits *convert.BitPlan
	// Weights are the loss weights of the final allocation (nil without the
	// sensitivity pass).
	Weights map[string]float64
}

// Run completes, validates and runs opt.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if err := opt.Complete(); err != nil {
		return nil, err
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return opt.Run(ctx)
}

// Complete fills the defaults.
func (o *Options) Complete() error {
	if o.TargetParams == 0 && o.TargetBits == 0 && o.Convert.Rank == 0 && o.Convert.Energy == 0 {
		o.TargetParams = DefaultTargetParams
	}
	if len(o.PlanBases) == 0 {
		if o.Convert.Base != "" {
			o.PlanBases = []vlora.BaseMode{o.Convert.Base}
		} else {
			o.PlanBases = []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero}
		}
	}
	if o.CalibSamples == 0 {
		o.CalibSamples = DefaultCalibSamples
	}
	if o.Distill.Train == "" {
		o.Distill.Train = DefaultTrain
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Validate checks the options; errors wrap formats.ErrInvalid.
func (o *Options) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case o.Model == "" || o.Out == "":
		return bad("a model and an output directory are needed")
	case o.TargetParams != 0 && o.TargetBits != 0:
		return bad("a parameter budget and a bit budget are exclusive")
	case o.TargetParams < 0 || o.TargetParams > 1:
		return bad("parameter target %v must be in (0, 1]", o.TargetParams)
	case o.TargetBits != 0 && (o.TargetBits < convert.MinTargetBits || o.TargetBits > 32):
		return bad("bit target %v must be in [%v, 32]", o.TargetBits, convert.MinTargetBits)
	case (o.TargetParams != 0 || o.TargetBits != 0) && (o.Convert.Rank != 0 || o.Convert.Energy != 0):
		return bad("a budget chooses the ranks: it excludes a fixed rank or energy")
	case o.TargetBits != 0 && o.Storage != nil:
		return bad("a bit budget chooses each tensor's storage: it excludes a quantization plan")
	case o.Init == InitWhitened && o.Convert.Energy != 0:
		return bad("the whitened initialisation needs a rank, not an energy")
	case o.CalibSamples < 1:
		return bad("calibration samples %d must be at least 1", o.CalibSamples)
	}
	if o.Rounding != "" {
		if _, err := ParseRounding(string(o.Rounding)); err != nil {
			return err
		}
	}
	if o.Init != "" {
		if _, err := ParseInit(string(o.Init)); err != nil {
			return err
		}
	}
	for _, m := range o.PlanBases {
		if _, err := vlora.ParseBaseMode(string(m)); err != nil {
			return bad("%v", err)
		}
	}
	if o.Storage != nil {
		if err := o.Storage.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// budget reports whether the plan spends a budget.
func (o *Options) budget() bool { return o.TargetParams != 0 || o.TargetBits != 0 }

// whitened reports whether the increments are truncated in the whitened
// space: by default unless an energy picks the ranks (the whitened
// truncation needs a rank).
func (o *Options) whitened() bool {
	return o.Init == InitWhitened || (o.Init == "" && o.Convert.Energy == 0)
}

// ErrNoCalibration reports a model whose calibration data cannot be
// sampled.
var ErrNoCalibration = fmt.Errorf("%w: calibration needs data for a model that does not generate text", formats.ErrInvalid)

// errSample marks calibration sequences that could not be sampled.
var errSample = errors.New("cannot sample")

// Run runs the recipe: calibration, plan, sensitivity pass, SVD stage,
// refit and, with Train, distillation. Complete and Validate must have
// been called.
func (o *Options) Run(ctx context.Context) (*Result, error) {
	opt := o.Convert
	if o.TargetBits != 0 && opt.DType == 0 {
		// Unquantized tensors of a bit budget are the 1-D ones: F32.
		opt.DType = formats.F32
	}
	var err error
	if opt.Align && opt.Alignment == nil {
		if opt.Alignment, err = convert.Align(ctx, o.Model, opt); err != nil {
			return nil, err
		}
	}
	cal, err := o.calibrate(ctx)
	if err != nil {
		return nil, err
	}
	if opt.Align && cal != nil {
		if err := cal.align(o.Model, opt.Alignment); err != nil {
			return nil, err
		}
	}
	if o.whitened() && cal != nil {
		if opt.Grams, err = calib.Grams(ctx, cal.teacher.Net, cal.inputs); err != nil {
			return nil, err
		}
	}
	plan, err := o.plan(ctx, cal, &opt)
	if err != nil {
		return nil, err
	}
	qp := o.storage(plan)
	opt.KeepModel = (cal != nil && !o.NoRefit) || qp != nil || o.Train != nil || o.Distiller != nil
	// The SVD stage's live memory is bounded by a few layer tensors; a soft
	// limit keeps the garbage collector from letting the heap double past
	// it.
	prevLimit := int64(-1)
	if os.Getenv("GOMEMLIMIT") == "" && !opt.KeepModel {
		prevLimit = debug.SetMemoryLimit(compressMemoryLimit)
	}
	res, err := convert.Compress(ctx, o.Model, o.Out, opt)
	if prevLimit >= 0 {
		debug.SetMemoryLimit(prevLimit)
	}
	if err != nil {
		return nil, err
	}
	out := &Result{Result: res, Plan: plan}
	if plan != nil && plan.Bits != nil {
		// The bit plan keeps tensors dense by choice; its report says so.
		res.DenseFallbacks = nil
	}
	if !o.NoRefit && cal != nil {
		if err := applyRefit(ctx, cal, res.Model, res.Path, o.Log); err != nil && !errors.Is(err, distill.ErrUnsupported) {
			return nil, err
		} else if err != nil {
			fmt.Fprintf(o.Log, "note: %v; no refit\n", err)
		}
	}
	if !opt.KeepModel {
		return out, nil
	}
	if qp != nil {
		res.Model.Manifest.Quant = qp
		if o.Rounding != RoundingRTN && plan != nil && plan.Bits != nil && opt.Grams != nil {
			if _, err := roundGPTQ(ctx, res.Model, qp, opt.Grams, o.GPTQ, o.Log); err != nil {
				return nil, err
			}
		}
	}
	// The teacher is the original: the calibration model unless it was
	// aligned.
	teacher := o.Teacher
	if teacher == nil && cal != nil && !opt.Align {
		teacher = cal.teacher
	}
	res.Manifest = res.Model.Manifest
	if o.Distiller != nil {
		if err := o.Distiller(ctx, teacher, res); err != nil {
			return nil, err
		}
		res.Manifest = res.Model.Manifest
		return out, nil
	}
	if o.Train == nil {
		if res.Model.Manifest.Quant != nil {
			// No distillation: the file is rounded to nearest.
			if err := res.Model.Save(res.Path); err != nil {
				return nil, err
			}
		}
		res.Manifest = res.Model.Manifest
		return out, nil
	}
	if teacher == nil {
		if teacher, err = model.LoadDense(o.Model); err != nil {
			return nil, err
		}
	}
	dopt := o.Distill
	if dopt.CheckpointPath == "" {
		dopt.CheckpointPath = filepath.Join(o.Out, "distill.ckpt.safetensors")
	}
	dres, err := distill.Run(ctx, teacher, res.Model, o.Train, dopt)
	if err != nil {
		return nil, err
	}
	if err := res.Model.Save(res.Path); err != nil {
		return nil, err
	}
	os.Remove(dopt.CheckpointPath)
	os.Remove(distill.OptimPath(dopt.CheckpointPath))
	res.Manifest = res.Model.Manifest
	out.Distilled = dres
	return out, nil
}

// storage returns the quantization plan of the file: the bit plan's
// per-tensor schemes, else Storage.
func (o *Options) storage(p *Plan) *vlora.QuantPlan {
	if p != nil && p.Bits != nil {
		qp := p.Bits.Quant()
		return &qp
	}
	if o.Storage != nil && o.Storage.Active() {
		qp := *o.Storage
		return &qp
	}
	return nil
}

// compressMemoryLimit is the soft heap limit of the SVD stage (1.5 GiB),
// unless GOMEMLIMIT says otherwise.
const compressMemoryLimit = 1536 << 20

// needsCalibration reports whether the recipe runs the original.
func (o *Options) needsCalibration() bool {
	return o.whitened() || !o.NoRefit || (o.budget() && !o.NoSensitivity)
}

// calibration is the original model and the calibration batches.
type calibration struct {
	teacher *model.Model
	inputs  []*transformer.Input
	source  string
	// shared is set when teacher is Options.Teacher.
	shared bool
}

// calibrate loads the original and the calibration batches when the
// recipe needs them; nil when it does not. With the default
// initialisation, a model that cannot be calibrated (no data and no text
// generation, or an architecture the forward pass lacks) falls back to the
// plain initialisation without refit or sensitivity pass, with a note;
// so does one whose sequences cannot be sampled.
func (o *Options) calibrate(ctx context.Context) (*calibration, error) {
	if !o.needsCalibration() {
		return nil, nil
	}
	cal, err := o.loadCalibration(ctx)
	if err != nil && o.Init == "" && (errors.Is(err, ErrNoCalibration) || errors.Is(err, model.ErrUnsupportedArchitecture) || errors.Is(err, errSample)) {
		fmt.Fprintf(o.Log, "note: %v; plain initialisation without refit\n", err)
		o.Init, o.NoRefit, o.NoSensitivity = InitPlain, true, true
		return nil, nil
	}
	return cal, err
}

// loadCalibration loads the original (unless Teacher is set) and the first
// CalibSamples sequences of Calibration, or samples them from the original,
// in batches of 16.
func (o *Options) loadCalibration(ctx context.Context) (*calibration, error) {
	c := &calibration{teacher: o.Teacher, shared: o.Teacher != nil}
	if c.teacher == nil {
		var err error
		if c.teacher, err = model.LoadDense(o.Model); err != nil {
			return nil, err
		}
	}
	data := o.Calibration
	switch {
	case data == nil && !c.teacher.IsCausalLM():
		return nil, ErrNoCalibration
	case data == nil:
		t := dataset.SeqLen(o.CalibSeqLen, dataset.DefaultSeqLen, c.teacher.Config.MaxPositions)
		var err error
		if data, err = dataset.Sample(ctx, c.teacher, o.CalibSamples, t, o.Seed); err != nil {
			return nil, fmt.Errorf("%w: calibration data: %v", errSample, err)
		}
	}
	c.source = data.Source
	n := min(data.N, o.CalibSamples)
	for i := 0; i < n; i += 16 {
		c.inputs = append(c.inputs, data.Batch(i, min(n, i+16)))
	}
	return c, nil
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

// align re-expresses the calibration model in the coordinates of a (a
// copy when the teacher is shared).
func (c *calibration) align(modelDir string, a *align.Alignment) error {
	if c.shared {
		t, err := model.LoadDense(modelDir)
		if err != nil {
			return err
		}
		c.teacher, c.shared = t, false
	}
	for name, p := range c.teacher.Net.Params {
		if err := align.Apply(a, name, p.Data); err != nil {
			return err
		}
	}
	return nil
}

// NeedsCalibration reports whether the recipe, as completed so far, runs
// the original on calibration data.
func (o *Options) NeedsCalibration() bool { return o.needsCalibration() }
