package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// compressOptions are the options of the compress command.
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
	// cal is the original model with the calibration data, loaded by Run
	// when the plan needs them, and shared with the distillation stage.
	cal *calibration
	// recipe is set when no recipe flag was given (the default recipe).
	recipe bool
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

Without a recipe flag (--rank, --energy, --base, --target-params, --init, --refit, --plan-bases)
it stores at most 55% of the original's parameters, ranks and bases chosen per tensor, truncated in
the space of the layer inputs on calibration data (--data, or sampled from the original), refitted
layer by layer, and distills every tensor on --data plus 1024 continuations of its sequences by
the original (language models), which keeps the student from fitting the data set instead of the
original.`,
		Example: `  # the default recipe, calibrated and distilled on a data file
  vlora-convert compress --model ./bytellama --out ./bytellama-vlora --data calib.safetensors

  # K=8, rank 32, first layer of each compound as base
  vlora-convert compress --model ./bytellama --out ./bytellama-vlora --compound-size 8 --rank 32

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
	fl.StringVar(&o.base, "base", "first", "compound base: first or mean")
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
	o.distill.storage.addFlags(fl, "f32")
	o.distill.eng.addFlags(fl)
	o.distill.eng.compress = true
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete builds the SVD stage's options from the flags.
func (o *compressOptions) Complete(cmd *cobra.Command, _ []string) error {
	o.rankSet, o.energySet = cmd.Flags().Changed("rank"), cmd.Flags().Changed("energy")
	if err := o.distill.useTokens(cmd, "distill-steps"); err != nil {
		return err
	}
	o.recipe = o.useDefaultRecipe(cmd)
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
	if o.opt.Base, err = vlora.ParseBaseMode(o.base); err != nil {
		return usageError{err}
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
	if o.plan.target > 0 && (o.rankSet || o.energySet) {
		return usagef("--target-params chooses every tensor's rank; leave out --rank and --energy, or --target-params")
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
	if err := o.plan.validate(); err != nil {
		return err
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

// run runs the SVD stage (unless a distillation checkpoint is to be
// resumed) and then the distillation stage.
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
	var clock stageClock
	data, unsupported, err := o.prepare(ctx, &clock)
	if err != nil {
		return err
	}
	res, s, err := o.svdStage(ctx, &clock, !o.distill.active() || unsupported != nil)
	if err != nil {
		return err
	}
	if unsupported != nil {
		fmt.Fprintf(o.ErrOut, "note: %v; the file holds the SVD initialisation only\n", unsupported)
	} else if o.distill.active() {
		if !o.json {
			fmt.Fprintln(o.Out)
		}
		ran, err := o.distill.run(ctx, o.streams, distillTarget{original: o.model, student: res.Model, output: res.Path,
			display: filepath.Join(o.out, vlora.FileName), seed: o.seed, quiet: o.quiet, json: o.json,
			compressed: s, clock: &clock, data: data})
		if err != nil || ran {
			return err
		}
	}
	if o.json {
		return printJSON(o.Out, struct {
			*summary
			Stages []stageStat `json:"stages"`
		}{s, clock.stats})
	}
	return nil
}

// prepare loads and checks everything the later stages read before the SVD
// stage writes its first byte: the original with the distillation data
// ("read"), and the calibration data of the plan ("calibrate"). A model the
// distillation stage cannot train is reported in unsupported, and keeps the
// SVD initialisation with a note (distillFlags.run).
func (o *compressOptions) prepare(ctx context.Context, clock *stageClock) (data *preparedData, unsupported, err error) {
	if o.distill.active() {
		err = clock.run("read", func() error {
			var err error
			data, err = o.distill.prepareFromDir(ctx, o.model, o.seed, bars{o.ErrOut, o.quiet})
			if errors.Is(err, distill.ErrUnsupported) {
				unsupported, err = err, nil
			}
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if o.plan.needsCalibration() {
		err := clock.run("calibrate", func() error {
			defer heartbeat(o.ErrOut, o.quiet, "calibrate")()
			return o.calibrate(ctx, data)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return data, unsupported, nil
}

// svdStage writes the SVD-stage file (rounded to nearest when stored
// quantized without distillation) with the original's companion files, and
// prints its summary unless --json; final says that no later stage
// rewrites the file, so that the summary names it as written.
func (o *compressOptions) svdStage(ctx context.Context, clock *stageClock, final bool) (*convert.Result, *summary, error) {
	var res *convert.Result
	err := clock.run("svd", func() error {
		var err error
		res, err = o.compress(ctx)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if !o.distill.active() && o.distill.storage.plan.Active() {
		// No distillation: round the stored tensors to nearest.
		o.distill.storage.apply(res.Model)
		if err := res.Model.Save(res.Path); err != nil {
			return nil, nil, err
		}
	}
	if err := copyCompanions(o.model, o.work); err != nil {
		return nil, nil, err
	}
	s := summarize(res.Manifest)
	if !o.json {
		if final {
			fmt.Fprintf(o.Out, "wrote %s\n", filepath.Join(o.out, vlora.FileName))
		}
		printSummary(o.Out, s)
		for _, fb := range res.DenseFallbacks {
			fmt.Fprintf(o.ErrOut, "note: stored dense: %s\n", fb)
		}
		if plan := o.distill.storage.plan; plan.Active() && o.distill.active() {
			fmt.Fprintf(o.Out, "the SVD stage's file is float; distillation trains for and writes %s\n", plan)
		}
	}
	return res, &s, nil
}

// compress runs the plan and the SVD stage with a progress bar under a soft
// memory limit, then the refit when asked. The model is kept in memory for
// the refit and the distillation stage.
func (o *compressOptions) compress(ctx context.Context) (*convert.Result, error) {
	opt := o.opt
	if opt.Align {
		var err error
		if opt.Alignment, err = convert.Align(ctx, o.model, opt); err != nil {
			return nil, err
		}
		if o.cal != nil {
			if err := o.cal.align(o.model, opt.Alignment); err != nil {
				return nil, err
			}
		}
	}
	// With the sensitivity pass only the final plan is reported.
	planLog := o.ErrOut
	if o.plan.sensitivity {
		planLog = io.Discard
	}
	planner, err := o.plan.apply(ctx, o.model, o.cal, &opt, nil, planLog)
	if err != nil {
		return nil, err
	}
	if o.plan.sensitivity {
		stop := heartbeat(o.ErrOut, o.quiet, "plan sensitivity")
		w, err := o.sensitivityWeights(ctx, opt, o.ErrOut)
		stop()
		if err != nil {
			return nil, fmt.Errorf("plan sensitivity: %w", err)
		}
		opt.LossWeights = w
		if _, err := o.plan.apply(ctx, o.model, o.cal, &opt, planner, o.ErrOut); err != nil {
			return nil, err
		}
	}
	bar := newProgress(o.ErrOut, o.quiet, "compress", 1, nil)
	opt.Progress = bar.Report
	opt.KeepModel = o.distill.active() || o.plan.refit || o.distill.storage.plan.Active()
	// The SVD stage's live memory is bounded by a few layer tensors; a soft
	// limit keeps the garbage collector from letting the heap double past it.
	prevLimit := int64(-1)
	if os.Getenv("GOMEMLIMIT") == "" && !opt.KeepModel {
		prevLimit = debug.SetMemoryLimit(compressMemoryLimit)
	}
	res, err := convert.Compress(ctx, o.model, o.work, opt)
	if prevLimit >= 0 {
		debug.SetMemoryLimit(prevLimit)
	}
	bar.Close()
	if err != nil || !o.plan.refit {
		return res, err
	}
	defer heartbeat(o.ErrOut, o.quiet, "refit")()
	return res, applyRefit(ctx, o.cal, res.Model, res.Path, o.ErrOut)
}

// compressMemoryLimit is the soft heap limit of the SVD stage (1.5 GiB),
// unless GOMEMLIMIT says otherwise.
const compressMemoryLimit = 1536 << 20

// runTorch hands the distillation stage to the PyTorch engine: it checks
// that the engine runs before any work, runs the SVD stage alone (as with
// --distill-steps 0), then the engine on the file it wrote, which the
// result replaces. With --resume and the engine's checkpoint beside the
// file, the SVD stage is skipped.
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
	var clock stageClock
	_, _, err = o.prepare(ctx, &clock)
	if err == nil {
		var s *summary
		if _, s, err = o.svdStage(ctx, &clock, false); err == nil {
			target.compressed = s
		}
	}
	o.distill.steps, o.distill.tokens = steps, tokens
	if err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintln(o.Out)
	}
	return o.distill.runEngine(ctx, o.streams, rt, target)
}
