package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/recipe"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// compressOptions are the options of the compress command: flags turned
// into recipe.Options, and the distillation stage's flags.
type compressOptions struct {
	streams
	model, out, base, svd  string
	k, rank, workers       int
	oversample, powerIters int
	energy                 float64
	seed                   uint64
	quiet, json, align     bool
	force                  bool
	distill                distillFlags
	// rankSet and energySet record whether the flags were given, so that
	// an explicit 0 is refused rather than taken for the default.
	rankSet, energySet bool
	plan               planFlags

	// opt is the SVD stage's configuration, set by Complete.
	opt convert.Options
	// dir is the output directory, owned while Run runs; work is where
	// the run writes (dir's staging directory).
	dir  *outdir.Dir
	work string
}

func newCompressCmd(s streams) *cobra.Command {
	o := &compressOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "compress --model DIR --out DIR",
		Short: "Compress a Hugging Face checkpoint into a VLoRA file",
		Long: `compress reads a Hugging Face model directory lazily, finds its repeated layer stack
(prefix.{i}.suffix), cuts it into compounds of K layers, factorizes every layer's difference from
its compound base by truncated SVD, and writes DIR/model.vlora.safetensors and DIR/config.json.

The default recipe (package recipe) stores at most 55% of the original's parameters
(--target-params), ranks and bases chosen per tensor and weighted by each tensor's measured effect
on the output (--plan-sensitivity), truncated in the space of the layer inputs on calibration data
(--init whitened; --data, or sampled from the original), refitted layer by layer (--refit), and
distills every tensor (--train all) on --data plus 1024 continuations of its sequences by the
original (--augment, language models), which keeps the student from fitting the data set instead
of the original. Each flag changes only what it names: --target-bits 3.5 spends a budget in bits
instead (every tensor dense at 8, 4, 3 or 2 bits or low rank, and quantization-aware
distillation), --rank 32 or --energy 0.9 replace the budget by one rank or energy, --dtype int4
stores the plan in int4, --base mean or -k 4 change only the base or the compound size; the rest of
the recipe stays.`,
		Example: `  # the default recipe, calibrated and distilled on a data file
  vlora-convert compress --model ./bytellama --out ./bytellama-vlora --data calib.safetensors

  # 3.5 bits per weight, every tensor's storage chosen for it, quantization-aware distillation
  vlora-convert compress --model ./bytellama --out ./bytellama-3.5 --data calib.safetensors --target-bits 3.5

  # K=8, rank 32, first layer of each compound as base, no distillation
  vlora-convert compress --model ./bytellama --out ./bytellama-vlora --compound-size 8 --rank 32 --distill-steps 0

  # keep 90% of each increment's energy, mean base, randomized SVD, bf16 output
  vlora-convert compress --model ./m --out ./m-vlora --energy 0.9 --base mean --svd randomized --dtype bf16

  # int4 storage (groups of 32, F16 scales), distilled with the quantized weights in the forward pass
  vlora-convert compress --model ./m --out ./m-int4 --dtype int4 --data calib.safetensors

  # no sharing: every layer its own base, int4, quantization-aware distillation
  vlora-convert compress --model ./m --out ./m-qat --compound-size 1 --dtype int4 --data calib.safetensors`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.model, "model", "", "Hugging Face model directory (required)")
	fl.StringVar(&o.out, "out", "", "output directory (required)")
	fl.IntVarP(&o.k, "compound-size", "k", convert.DefaultCompoundSize, "layers per compound (K), 1…65536")
	fl.IntVarP(&o.rank, "rank", "r", 0, fmt.Sprintf("increment rank, 1…65536 (default %d unless --energy is given)", convert.DefaultRank))
	fl.Float64Var(&o.energy, "energy", 0, "keep this fraction of each increment's squared singular values (0<E<=1; 1 is exact)")
	fl.StringVar(&o.base, "base", "", "compound base: first, mean or zero (default: chosen per tensor among --plan-bases under --target-params; first with --rank or --energy)")
	fl.StringVar(&o.svd, "svd", "exact", "SVD method: exact or randomized")
	fl.Uint64Var(&o.seed, "seed", 0, "seed of the randomized SVD")
	fl.IntVar(&o.oversample, "oversample", svd.DefaultOversample, "extra sketch columns of the randomized SVD, 0…4096")
	fl.IntVar(&o.powerIters, "power-iters", svd.DefaultPowerIters, "power iterations of the randomized SVD, 0…64")
	fl.IntVar(&o.workers, "workers", 0, "tensors factorized in parallel, 0…1024 (0: all cores)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output")
	fl.BoolVar(&o.json, "json", false, "print the result as JSON")
	fl.BoolVar(&o.force, "force", false, "write into --out even when it holds files vlora-convert did not write (those of the same names are replaced)")
	fl.BoolVar(&o.align, "align", false, "before compressing, permute MLP neurons, key/value groups and query heads and rotate value heads and rotary planes of every layer to bring it closest to its compound mean; exact: the stored model computes the same function (Llama, Mistral, Qwen2)")
	fl.IntVar(&o.distill.steps, "distill-steps", distill.DefaultSteps, "distillation steps after the SVD stage, 0…2^24 (0: SVD only)")
	o.distill.addFlags(fl)
	o.distill.addSourceCheckFlag(fl)
	o.plan.addFlags(fl)
	o.distill.storage.addFlags(fl, "")
	o.distill.eng.addFlags(fl)
	o.distill.eng.compress = true
	// The default recipe's distillation: every tensor, on the data and
	// continuations of it by the original (language models).
	o.distill.train = string(recipe.DefaultTrain)
	fl.Lookup("train").DefValue = string(recipe.DefaultTrain)
	o.distill.augment = defaultAugment
	fl.Lookup("augment").DefValue = fmt.Sprint(defaultAugment)
	fl.Lookup("augment").Usage += " (default recipe: language models with token data only)"
	fl.Lookup("dtype").DefValue = "f32"
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete builds the SVD stage's options from the flags.
func (o *compressOptions) Complete(cmd *cobra.Command, _ []string) error {
	fl := cmd.Flags()
	o.rankSet, o.energySet = fl.Changed("rank"), fl.Changed("energy")
	if err := o.distill.useTokens(cmd, "distill-steps"); err != nil {
		return err
	}
	o.plan.complete(fl)
	if !fl.Changed("augment") {
		o.distill.augmentIfLM = true
	}
	randomized := strings.EqualFold(o.svd, "randomized")
	err := refuseInert(cmd, append(o.distill.inertRules(),
		inertRule{"oversample", !randomized, "the randomized SVD (--svd randomized)"},
		inertRule{"power-iters", !randomized, "the randomized SVD (--svd randomized)"})...)
	if err != nil {
		return err
	}
	o.opt = convert.Options{CompoundSize: o.k, Rank: o.rank, Energy: o.energy, Seed: o.seed,
		Oversample: o.oversample, PowerIters: o.powerIters, Workers: o.workers, Align: o.align}
	if o.oversample == 0 {
		o.opt.Oversample = svd.NoOversample
	}
	if o.powerIters == 0 {
		o.opt.PowerIters = svd.NoPowerIters
	}
	if o.base != "" {
		if o.opt.Base, err = vlora.ParseBaseMode(o.base); err != nil {
			return usageError{err}
		}
	}
	if o.opt.SVD, err = svd.ParseMethod(o.svd); err != nil {
		return usageError{err}
	}
	if err := o.distill.storage.complete(); err != nil {
		return err
	}
	o.opt.DType = o.distill.storage.float
	return nil
}

// Validate rejects flag values outside their documented ranges, flag
// combinations the stages would refuse, and an output directory that would
// write into an input, before anything is read or written.
func (o *compressOptions) Validate() error {
	if o.rankSet && o.energySet {
		return usagef("--rank and --energy are exclusive")
	}
	err := firstError(
		intRange("compound-size", o.k, 1, maxCompoundSize),
		intRange("oversample", o.oversample, 0, maxOversample),
		intRange("power-iters", o.powerIters, 0, maxPowerIters),
		intRange("workers", o.workers, 0, maxWorkers),
		intRange("distill-steps", o.distill.steps, 0, maxSteps),
	)
	if err != nil {
		return err
	}
	if err := o.plan.validate(o.rankSet || o.energySet); err != nil {
		return err
	}
	if o.plan.bits != 0 && (o.distill.storage.plan.Active() || o.distill.storage.float != formats.F32) {
		return usagef("--target-bits chooses each tensor's storage: it excludes a quantized or 16-bit --dtype and --quant")
	}
	if o.plan.bits != 0 && o.align {
		return usagef("--target-bits does not align layers: drop --align")
	}
	if o.rankSet {
		if err := intRange("rank", o.rank, 1, maxRank); err != nil {
			return err
		}
	}
	if o.energySet {
		if err := floatRange("energy", o.energy, 0, 1, true); err != nil {
			return err
		}
	}
	if err := firstError(o.distill.validate(), o.distill.eng.validate(&o.distill)); err != nil {
		return err
	}
	return guardOutputs("--out", o.distill.outputs(o.out), o.model, o.distill.data, o.distill.evalData)
}

// Run takes the output directory, runs the stages into its staging
// directory and, when they succeed, moves their files into place.
func (o *compressOptions) Run(ctx context.Context) error {
	d, err := outdir.Open(o.out, outdir.Options{Flag: "--out", Force: o.force, Resume: o.distill.resume})
	if err != nil {
		return err
	}
	o.dir, o.work = d, d.Work()
	if err = o.run(ctx); err == nil {
		err = d.Commit()
	}
	d.Close(err != nil && ctx.Err() != nil)
	return err
}

// run runs the recipe (unless a distillation checkpoint is to be resumed),
// or hands its distillation stage to the PyTorch engine.
func (o *compressOptions) run(ctx context.Context) error {
	if o.distill.eng.torch() && o.distill.active() {
		return o.runTorch(ctx)
	}
	if o.distill.resume && resumable(o.work) {
		// A checkpoint from an interrupted distillation: skip the SVD stage.
		p := filepath.Join(o.work, vlora.FileName)
		_, err := o.distill.run(ctx, o.streams, distillTarget{original: o.model, input: p, output: p, seed: o.seed, quiet: o.quiet, json: o.json,
			display: filepath.Join(o.out, vlora.FileName)})
		return err
	}
	_, err := o.runRecipe(ctx, true)
	return err
}

// runRecipe runs flags → recipe.Options → recipe.Run into the staging
// directory, with the command's distillation stage (loss log,
// checkpoints, report) as its distiller. final says that no later stage
// rewrites the file (the PyTorch engine's does), so that the report
// names it as written. It returns the SVD stage's summary.
func (o *compressOptions) runRecipe(ctx context.Context, final bool) (*summary, error) {
	var clock stageClock
	data, unsupported, err := o.prepare(ctx, &clock)
	if err != nil {
		return nil, err
	}
	ro, err := o.recipeOptions(ctx, data, unsupported == nil)
	if err != nil {
		return nil, err
	}
	display := filepath.Join(o.out, vlora.FileName)
	stopSVD := clock.start("svd")
	// Calibration, the sensitivity pass and the refit report no progress
	// of their own: a plain line every few seconds when stderr is not a
	// terminal.
	stopBeat := heartbeat(o.ErrOut, o.quiet, "compress")
	var s *summary
	// compressed finishes the SVD stage: companion files and its report.
	compressed := func(res *convert.Result, final bool) error {
		stopSVD()
		stopBeat()
		if err := copyCompanions(o.model, o.work); err != nil {
			return err
		}
		s = o.report(res, final)
		return nil
	}
	distilling := false
	if o.distill.active() && unsupported == nil {
		ro.Distiller = func(ctx context.Context, _ *model.Model, res *convert.Result) error {
			if err := compressed(res, false); err != nil {
				return err
			}
			distilling = true
			if !o.json {
				fmt.Fprintln(o.Out)
			}
			_, err := o.distill.run(ctx, o.streams, distillTarget{original: o.model, student: res.Model, output: res.Path,
				display: display, seed: o.seed, quiet: o.quiet, json: o.json, compressed: s, clock: &clock, data: data})
			return err
		}
	}
	bar := newProgress(o.ErrOut, o.quiet, "compress", 1, nil)
	ro.Convert.Progress = bar.Report
	res, err := recipe.Run(ctx, ro)
	bar.Close()
	stopBeat()
	if err != nil {
		return nil, err
	}
	if unsupported != nil {
		fmt.Fprintf(o.ErrOut, "note: %v; the file holds the SVD initialisation only\n", unsupported)
	}
	if distilling {
		return s, nil
	}
	if err := compressed(res.Result, final); err != nil {
		return nil, err
	}
	if o.json && final {
		return s, printJSON(o.Out, struct {
			*summary
			Stages []stageStat `json:"stages"`
		}{s, clock.stats})
	}
	return s, nil
}

// runTorch hands the distillation stage to the PyTorch engine: it checks
// that the engine runs before any work, runs the recipe without its
// distillation (as with --distill-steps 0), then the engine on the file it
// wrote, which the result replaces. With --resume and the engine's
// checkpoint beside the file, the SVD stage is skipped.
func (o *compressOptions) runTorch(ctx context.Context) error {
	rt, err := engineRuntime(ctx)
	if err != nil {
		return err
	}
	path := filepath.Join(o.work, vlora.FileName)
	target := distillTarget{original: o.model, input: path, output: path, seed: o.seed, quiet: o.quiet, json: o.json,
		display: filepath.Join(o.out, vlora.FileName)}
	if _, cerr := os.Stat(path + ".ckpt"); o.distill.resume && cerr == nil {
		return o.distill.runEngine(ctx, o.streams, rt, target)
	}
	steps, tokens := o.distill.steps, o.distill.tokens
	o.distill.steps, o.distill.tokens = 0, 0 // the SVD stage alone
	s, err := o.runRecipe(ctx, false)
	o.distill.steps, o.distill.tokens = steps, tokens
	if err != nil {
		return err
	}
	target.compressed = s
	if !o.json {
		fmt.Fprintln(o.Out)
	}
	return o.distill.runEngine(ctx, o.streams, rt, target)
}

// recipeOptions turns the flags into the recipe's options; data, when set,
// is the distillation stage's, whose teacher the recipe shares.
func (o *compressOptions) recipeOptions(ctx context.Context, data *preparedData, distills bool) (recipe.Options, error) {
	ro := recipe.Options{Model: o.model, Out: o.work, Convert: o.opt, Seed: o.seed, Log: o.ErrOut, CalibSeqLen: o.distill.seqLen}
	o.plan.options(&ro)
	if p := o.distill.storage.plan; p.Active() {
		ro.Storage = &p
	}
	if data != nil {
		ro.Teacher = data.teacher
	}
	if o.distill.data == "" || !ro.NeedsCalibration() {
		return ro, nil
	}
	// Calibration sequences: the first of --data.
	teacher := ro.Teacher
	if teacher == nil {
		var err error
		teacher, err = model.LoadDense(o.model)
		if errors.Is(err, model.ErrUnsupportedArchitecture) && ro.Init == "" {
			return ro, nil // the recipe notes it and falls back
		}
		if err != nil {
			return ro, err
		}
		ro.Teacher = teacher
	}
	var err error
	if ro.Calibration, err = calibrationData(ctx, teacher, &o.distill, o.plan.calibSamples); err != nil {
		return ro, fmt.Errorf("calibration data: %w", err)
	}
	return ro, nil
}

// report prints the SVD stage's summary and plan unless --json, and
// returns the summary; final says that the file is the run's result, which
// is then named as written, where it will be once the output directory is
// committed.
func (o *compressOptions) report(res *convert.Result, final bool) *summary {
	s := summarize(res.Manifest)
	if !o.json {
		if final {
			fmt.Fprintf(o.Out, "wrote %s\n", filepath.Join(o.out, vlora.FileName))
		}
		printSummary(o.Out, s)
		for _, fb := range res.DenseFallbacks {
			fmt.Fprintf(o.ErrOut, "note: stored dense: %s\n", fb)
		}
		if plan := res.Manifest.Quant; plan != nil && o.distill.active() {
			fmt.Fprintf(o.Out, "the SVD stage's file is float; distillation trains for and writes %s\n", plan)
		}
	}
	return &s
}

// prepare loads and checks the distillation stage's data before anything
// is written ("read"). A model the distillation stage cannot train is
// reported in unsupported, and keeps the SVD initialisation with a note.
func (o *compressOptions) prepare(ctx context.Context, clock *stageClock) (data *preparedData, unsupported, err error) {
	if !o.distill.active() {
		return nil, nil, nil
	}
	err = clock.run("read", func() error {
		var err error
		data, err = o.distill.prepareFromDir(ctx, o.model, o.seed, bars{o.ErrOut, o.quiet})
		if errors.Is(err, distill.ErrUnsupported) {
			unsupported, err = err, nil
		}
		return err
	})
	return data, unsupported, err
}
