package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// distillFlags configure the distillation stage of compress and the
// distill command.
type distillFlags struct {
	steps, batch, seqLen, pool, evalSamples, warmup, ckptEvery int
	data, evalData, train, decay                               string
	tokenizer, textField                                       string
	stride                                                     int
	lr, temperature, hiddenWeight, clip, weightDecay           float64
	minLRRatio, beta2                                          float64
	baseLRScale, passLRScale, localLR                          float64
	localSteps, augment, augmentPrefix                         int
	// tokens, when positive, replaces the step count by a token budget.
	tokens                                                    int64
	resume, recompute, skipSourceCheck, scaledGD, hiddenDecay bool
	// augmentIfLM skips --augment quietly for data it cannot continue
	// (the default recipe's setting).
	augmentIfLM bool
	// storage is how the distilled file is stored.
	storage storageFlags
	// eng is the engine that runs the stage (distill command only).
	eng engineFlags
}

// addFlags registers the stage's flags (all but the step count).
func (d *distillFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&d.data, "data", "", "training data: text (.txt, .jsonl, a directory of .txt), an image folder, or safetensors with tokens/input_ids [N,T] (default: sample from the original)")
	fl.StringVar(&d.tokenizer, "tokenizer", "", "tokenizer.json (or a directory holding one) for text data (default: the original's)")
	fl.StringVar(&d.textField, "text-field", "", "field of each .jsonl line holding the text (default \"text\")")
	fl.IntVar(&d.stride, "stride", 0, "text: start a window every N tokens (default: non-overlapping windows of --seq-len)")
	fl.StringVar(&d.evalData, "eval-data", "", "evaluation data for the final KL (default: sequences sampled from the original)")
	fl.IntVar(&d.evalSamples, "eval-samples", 64, "evaluation items taken from --eval-data (16 when sampled), 0…2^20")
	fl.IntVar(&d.batch, "batch", distill.DefaultBatch, "sequences per step, 1…65536")
	fl.IntVar(&d.seqLen, "seq-len", 0, "sequence length, 0…65536 (0: the data's; 128 when sampling)")
	fl.IntVar(&d.augment, "augment", 0, "add this many continuations by the original of --data's sequences to the training data (each keeps --augment-prefix tokens of a sequence, the rest sampled at temperature 1), 0…2^20 (0: none)")
	fl.IntVar(&d.augmentPrefix, "augment-prefix", 0, "tokens of a --data sequence each continuation keeps, 0…65535, below the sequence length (0: an eighth of it, at most 32)")
	fl.IntVar(&d.pool, "samples", 0, "sequences sampled from the original in data-free mode, 0…2^20 (0: 4×batch, at least 64)")
	fl.Float64Var(&d.lr, "lr", 0, fmt.Sprintf("peak learning rate, [0, 10] (AdamW, warm-up then --decay to --min-lr-ratio of it; 0: %g, or %g for quantized storage of 3 bits or more without sharing: every layer its own base)", distill.DefaultLR, distill.DefaultQATLR))
	fl.Float64Var(&d.minLRRatio, "min-lr-ratio", distill.DefaultMinLRRatio, "fraction of the peak learning rate the decay ends at, (0, 1]")
	fl.StringVar(&d.decay, "decay", "cosine", "shape of the learning-rate decay from the peak to --min-lr-ratio of it: cosine or linear")
	fl.Float64Var(&d.beta2, "beta2", 0.999, "AdamW's second-moment decay, (0, 1)")
	fl.IntVar(&d.warmup, "warmup", distill.DefaultWarmup, "linear warm-up steps, 0…2^24")
	fl.StringVar(&d.train, "train", "bases", "trainable tensors: factors (increments only), bases (and bases), all (and embeddings/head)")
	fl.Float64Var(&d.temperature, "temperature", 1, "softmax temperature of the KL term, (0, 100]")
	fl.Float64Var(&d.hiddenWeight, "hidden-weight", 10, "weight of the layer-by-layer hidden-state matching term, [0, 1e6] (relative squared error, mean over layers; 0: KL only)")
	fl.BoolVar(&d.hiddenDecay, "hidden-decay", false, "lower the hidden-state weight along a cosine to 0 at the last step, so the last steps optimize the KL alone (pays in long runs: millions of --tokens)")
	fl.Float64Var(&d.clip, "clip", 1, "clip the global gradient norm, [0, 1e6] (0: off)")
	fl.Float64Var(&d.weightDecay, "weight-decay", 0, "AdamW decoupled weight decay, [0, 1000]")
	fl.IntVar(&d.ckptEvery, "checkpoint-every", 50, "save a checkpoint every N steps, 0…2^24 (0: never)")
	fl.Int64Var(&d.tokens, "tokens", 0, "train on this many tokens instead of a step count, 0…2^40 (steps = tokens / (batch × sequence length), rounded up)")
	fl.IntVar(&d.localSteps, "local-steps", 0, "local stage before the global one: steps per compound matching every block's output to the original's, 0…2^24 (0: none)")
	fl.Float64Var(&d.localLR, "local-lr", 0, "peak learning rate of the local stage, [0, 10] (0: --lr)")
	fl.BoolVar(&d.scaledGD, "scaled-gd", false, "precondition the gradients of each low-rank pair as ScaledGD does (∇B(AAᵀ+εI)⁻¹, (BᵀB+εI)⁻¹∇A) before AdamW")
	fl.Float64Var(&d.baseLRScale, "base-lr-scale", 1, "learning-rate multiplier of the compound bases, (0, 1000]")
	fl.Float64Var(&d.passLRScale, "pass-lr-scale", 1, "learning-rate multiplier of the embeddings, final norm and head (--train all), (0, 1000]")
	fl.BoolVar(&d.resume, "resume", false, "continue from the checkpoint left by an interrupted run")
	fl.BoolVar(&d.recompute, "recompute", false, "keep only each layer's input and recompute its activations in the backward pass (less memory, one more forward pass)")
}

// addSourceCheckFlag registers --skip-source-check, for the commands that
// pair a VLoRA file with an original read from disk.
func (d *distillFlags) addSourceCheckFlag(fl *pflag.FlagSet) {
	fl.BoolVar(&d.skipSourceCheck, "skip-source-check", false, "accept an original whose files differ from the SHA-256 the VLoRA file records (shapes and architecture are still checked)")
}

// useTokens makes --tokens replace the step count set by stepsFlag, an
// error when both were given.
func (d *distillFlags) useTokens(cmd *cobra.Command, stepsFlag string) error {
	if d.tokens == 0 {
		return nil
	}
	if cmd.Flags().Changed(stepsFlag) {
		return usagef("--%s and --tokens are exclusive", stepsFlag)
	}
	d.steps = 0
	return nil
}

// active reports whether the flags ask for a distillation stage.
func (d *distillFlags) active() bool { return d.steps > 0 || d.tokens > 0 }

// validate checks every flag of the stage against its documented range.
func (d *distillFlags) validate() error {
	if _, err := distill.ParseTrainSet(d.train); err != nil {
		return usagef("--train: %v", err)
	}
	if _, err := distill.ParseDecay(d.decay); err != nil {
		return usagef("--decay: %v", err)
	}
	return firstError(
		intRange("batch", d.batch, 1, maxBatch),
		intRange("seq-len", d.seqLen, 0, maxSeqLen),
		intRange("stride", d.stride, 0, max(d.seqLen, 0)),
		intRange("samples", d.pool, 0, maxSamples),
		intRange("eval-samples", d.evalSamples, 0, maxSamples),
		intRange("warmup", d.warmup, 0, maxSteps),
		intRange("checkpoint-every", d.ckptEvery, 0, maxSteps),
		floatRange("lr", d.lr, 0, 10, false),
		floatRange("temperature", d.temperature, 0, 100, true),
		floatRange("hidden-weight", d.hiddenWeight, 0, 1e6, false),
		floatRange("clip", d.clip, 0, 1e6, false),
		floatRange("weight-decay", d.weightDecay, 0, 1e3, false),
		floatRange("min-lr-ratio", d.minLRRatio, 0, 1, true),
		floatRange("beta2", d.beta2, 0, 1, true),
		int64Range("tokens", d.tokens, 0, maxTokens),
		intRange("local-steps", d.localSteps, 0, maxSteps),
		intRange("augment", d.augment, 0, 1<<20),
		intRange("augment-prefix", d.augmentPrefix, 0, 65535),
		floatRange("local-lr", d.localLR, 0, 10, false),
		floatRange("base-lr-scale", d.baseLRScale, 0, 1000, true),
		floatRange("pass-lr-scale", d.passLRScale, 0, 1000, true),
	)
}

// decayKind returns the --decay shape, cosine when the flag is invalid
// (validate reports that).
func (d *distillFlags) decayKind() distill.Decay {
	k, _ := distill.ParseDecay(d.decay)
	return k
}

// outputs lists the files the stage writes into dir: the VLoRA file, its
// config.json, the loss log and plot, and the checkpoint.
func (d *distillFlags) outputs(dir string) []string {
	ckpt := filepath.Join(dir, checkpointName)
	base := strings.TrimSuffix(vlora.FileName, ".safetensors")
	return append(outputFiles(dir, vlora.FileName, "config.json", base+".loss.csv", base+".loss.png"),
		ckpt, distill.OptimPath(ckpt))
}

// checkpointName is the file name of the distillation checkpoint, beside
// the output.
const checkpointName = "distill.ckpt.safetensors"

// options returns the library options the flags describe.
func (d *distillFlags) options(seed uint64) distill.Options {
	return distill.Options{
		Steps: d.steps, Tokens: d.tokens, Batch: d.batch, LR: d.lr, Warmup: d.warmup, Train: distill.TrainSet(d.train),
		Temperature: d.temperature, HiddenWeight: d.hiddenWeight, HiddenDecay: d.hiddenDecay, ClipNorm: d.clip, WeightDecay: d.weightDecay,
		MinLRRatio: d.minLRRatio, Decay: d.decayKind(), Beta2: d.beta2,
		LRScales:   distill.LRScales{Bases: d.baseLRScale, Passthrough: d.passLRScale},
		LocalSteps: d.localSteps, LocalLR: d.localLR, Precondition: d.scaledGD,
		Seed: seed, CheckpointEvery: d.ckptEvery, Resume: d.resume, Recompute: d.recompute,
	}
}

func resumable(outDir string) bool {
	_, err := os.Stat(filepath.Join(outDir, checkpointName))
	_, err2 := os.Stat(filepath.Join(outDir, vlora.FileName))
	return err == nil && err2 == nil
}

// distillTarget says what the distillation stage trains and where the
// result goes.
type distillTarget struct {
	// original is the teacher's directory.
	original string
	// student is the model to train; when nil it is read from input.
	student       *vlora.Model
	input, output string
	// display, when set, is the path output reaches once the run's
	// output directory is committed; the summary names it and the files
	// beside it there.
	display     string
	seed        uint64
	quiet, json bool
	// compressed, when set, is the SVD stage's summary, printed with the
	// distillation's in JSON.
	compressed *summary
	// clock, when set, holds the stages that ran before this one; the
	// distillation's stages are added to it.
	clock *stageClock
	// data, when set, is the teacher and data prepared beforehand.
	data *preparedData
}

// run runs the distillation stage on t and prints its summary; ran reports
// whether it did. A model the stage cannot train is noted on the error
// stream and is no error; the file then keeps the SVD initialisation.
func (d *distillFlags) run(ctx context.Context, s streams, t distillTarget) (ran bool, err error) {
	err = d.runStage(ctx, s, t)
	if errors.Is(err, distill.ErrUnsupported) {
		fmt.Fprintf(s.ErrOut, "note: %v; the file holds the SVD initialisation only\n", err)
		return false, nil
	}
	return err == nil, err
}

// runStage loads the teacher (and the student when t has none), runs the
// distillation job and prints its summary.
func (d *distillFlags) runStage(ctx context.Context, s streams, t distillTarget) error {
	if t.clock == nil {
		t.clock = &stageClock{}
	}
	var err error
	if t.student == nil || t.data == nil {
		err = t.clock.run("read", func() error {
			var err error
			if t.student == nil {
				if t.student, err = d.loadStudent(ctx, t.input, t.original, bars{s.ErrOut, t.quiet}); err != nil {
					return err
				}
			}
			if t.data == nil {
				t.data, err = d.prepareFromDir(ctx, t.original, t.seed, bars{s.ErrOut, t.quiet})
			}
			return err
		})
	}
	if err != nil {
		return err
	}
	teacher := t.data.teacher
	defer teacher.Close()
	tightenGC(teacher)
	defer limitDistillMemory(distillLimitFor(t.student.Manifest, teacher, d, t.data.train))()
	// Distillation trains for the storage recorded in the manifest.
	d.storage.apply(t.student)
	var last distill.Stats
	bar := newProgress(s.ErrOut, t.quiet, "distill", int64(d.steps), func() string {
		return fmt.Sprintf("loss %.4f  %.0f tok/s", last.Loss, last.TokensPerSec)
	})
	job := distillJob{
		Teacher: teacher, Student: t.student, Output: t.output,
		Train: t.data.train, Eval: t.data.eval,
		Options: d.options(t.seed), Clock: t.clock,
	}
	job.Options.Progress = func(p stage.Progress) {
		if p.Stage != stage.Distill {
			return // the local stage is short; the bar counts global steps
		}
		last.Loss, last.TokensPerSec = p.Loss, p.TokensPerSec
		bar.Report(p)
	}
	sum, err := job.run(ctx)
	bar.Close()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w (the last checkpoint is kept; rerun with --resume)", err)
		}
		return err
	}
	sum.Stages = t.clock.stats
	sum.display(t)
	return printDistill(s, sum, t)
}

// display names the files of sum where they will be once the run's
// output directory is committed (t.display), not in its staging directory.
func (sum *distillSummary) display(t distillTarget) {
	if t.display == "" {
		return
	}
	dir := filepath.Dir(t.display)
	sum.Output = t.display
	sum.LossCSV = filepath.Join(dir, filepath.Base(sum.LossCSV))
	sum.LossPlot = filepath.Join(dir, filepath.Base(sum.LossPlot))
}

// printDistill prints the stage's summary, as JSON when asked (together
// with the SVD stage's when there was one).
func printDistill(s streams, sum *distillSummary, t distillTarget) error {
	if t.json {
		if t.compressed != nil {
			t.compressed.ParamsStored = sum.ParamsStored
			return printJSON(s.Out, struct {
				*distillSummary
				Compress *summary `json:"compress"`
			}{sum, t.compressed})
		}
		return printJSON(s.Out, sum)
	}
	w := s.Out
	fmt.Fprintf(w, "wrote %s (%.3f bits per original weight)\n", sum.Output, sum.BitsPerWeight)
	if sum.LocalSteps > 0 {
		fmt.Fprintf(w, "local stage %d steps in %.1f s\n", sum.LocalSteps, sum.LocalSeconds)
	}
	fmt.Fprintf(w, "distilled %d steps (%d tokens) in %.1f s, %.0f tokens/s\n", sum.Steps, sum.Tokens, sum.TrainSeconds, sum.TokensPerSecond)
	fmt.Fprintf(w, "train data  %s\n", sum.TrainData)
	fmt.Fprintf(w, "final loss  %.4f (mean of the last 10 steps)\n", sum.FinalLoss)
	if sum.EvalData != "" {
		fmt.Fprintf(w, "eval        KL %.4f, top-1 agreement %.4f on %s\n", sum.EvalKL, sum.EvalAgreement, sum.EvalData)
	} else {
		fmt.Fprintln(w, "eval        none (no --eval-data)")
	}
	fmt.Fprintf(w, "loss log    %s, %s\n", sum.LossCSV, sum.LossPlot)
	return nil
}

// distillOptions are the options of the distill command.
type distillOptions struct {
	streams
	flags         distillFlags
	in            string
	original, out string
	seed          uint64
	quiet, json   bool
	force         bool

	// input and output are the resolved file paths, set by Complete.
	input, output string
}

func newDistillCmd(s streams) *cobra.Command {
	o := &distillOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "distill FILE|DIR --original DIR",
		Short: "Continue distilling a VLoRA file towards its original model",
		Long: `distill fine-tunes the bases, factors and deltas of a VLoRA file so that its outputs match the
original model's (KL(original‖compressed) on logits), with AdamW, warm-up and a cosine (or --decay linear) decay. The
result replaces FILE (or goes to --out DIR), with the loss log (CSV) and a loss-curve PNG beside it.
Checkpoints are written every --checkpoint-every steps; after Ctrl-C, rerun with --resume.

With --engine torch the same recipe runs on the PyTorch engine (python/vlora_torch; on GPUs, with
--nproc processes under torchrun, DDP or --fsdp): the flags are checked here, text data is encoded
here with the original's tokenizer, the batches are the ones the Go engine would draw, and the
engine's progress is shown here. It needs the environment scripts/pyenv.sh builds (.venv, or
$VLORA_PYTHON); without it the command stops before any work, with exit code 2.`,
		Example: `  vlora-convert distill ./bytellama-vlora --original ./bytellama --steps 300 \
      --data calib.safetensors --eval-data eval.safetensors

  # data-free: train on sequences sampled from the original
  vlora-convert distill ./m-vlora --original ./m --steps 100 --json

  # on GPUs with the PyTorch engine (install it once with scripts/pyenv.sh)
  vlora-convert distill ./m-vlora --original ./m --data train.jsonl --tokens 10000000 \
      --engine torch --nproc 8 --engine-dtype bf16`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.original, "original", "", "original Hugging Face model directory (required)")
	fl.StringVar(&o.out, "out", "", "write the result to this directory instead of replacing FILE")
	fl.IntVar(&o.flags.steps, "steps", distill.DefaultSteps, "optimizer steps, 0…2^24")
	fl.Uint64Var(&o.seed, "seed", 0, "seed for batch sampling and sampled data")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output")
	fl.BoolVar(&o.json, "json", false, "print the summary as JSON")
	fl.BoolVar(&o.force, "force", false, "write into --out even when it holds files vlora-convert did not write (those of the same names are replaced)")
	o.flags.addFlags(fl)
	o.flags.addSourceCheckFlag(fl)
	o.flags.storage.addFlags(fl, "")
	o.flags.eng.addFlags(fl)
	cmd.MarkFlagRequired("original")
	return cmd
}

// Complete resolves the input file and the output path.
func (o *distillOptions) Complete(cmd *cobra.Command, args []string) error {
	if err := o.flags.useTokens(cmd, "steps"); err != nil {
		return err
	}
	if err := o.flags.storage.complete(); err != nil {
		return err
	}
	if err := refuseInert(cmd, o.flags.inertRules()...); err != nil {
		return err
	}
	o.in = args[0]
	in, err := vlora.ResolvePath(args[0])
	if err != nil {
		return usageError{err}
	}
	o.input, o.output = in, in
	if o.out != "" {
		o.output = filepath.Join(o.out, vlora.FileName)
	}
	return nil
}

// Validate checks the stage's flags and that no output lands in or over
// an input: the original, the data files, or (with --out) the VLoRA file.
func (o *distillOptions) Validate() error {
	if err := firstError(intRange("steps", o.flags.steps, 0, maxSteps), o.flags.validate(), o.flags.eng.validate(&o.flags)); err != nil {
		return err
	}
	if o.out == "" {
		// The result replaces FILE; its other outputs go beside it.
		outs := o.flags.outputs(filepath.Dir(o.input))
		return guardOutputs(o.in, outs[1:], o.original, o.flags.data, o.flags.evalData)
	}
	return guardOutputs("--out", o.flags.outputs(o.out), o.input, o.original, o.flags.data, o.flags.evalData)
}

// Run takes the output directory (FILE's, replaced in place, or --out),
// checks the original, the data and the VLoRA file and runs the
// distillation stage; with --out, config.json and the companion files are
// copied beside the result and everything is moved into place at the end.
func (o *distillOptions) Run(ctx context.Context) error {
	opt := outdir.Options{Flag: "--out", Force: o.force, Resume: o.flags.resume}
	dir := o.out
	if o.out == "" {
		// FILE is replaced in place (atomically, at the end); the lock
		// keeps a second run out of its directory meanwhile.
		opt, dir = outdir.Options{Flag: "directory", InPlace: true}, filepath.Dir(o.input)
	}
	d, err := outdir.Open(dir, opt)
	if err != nil {
		return err
	}
	if err = o.run(ctx, d); err == nil {
		if o.out == "" {
			base := strings.TrimSuffix(filepath.Base(o.input), ".safetensors")
			err = d.Commit(filepath.Base(o.input), base+".loss.csv", base+".loss.png")
		} else {
			err = d.Commit()
		}
	}
	d.Close(err != nil && ctx.Err() != nil)
	return err
}

// run reads the models and the data and runs the stage into d.
func (o *distillOptions) run(ctx context.Context, d *outdir.Dir) error {
	if o.flags.eng.torch() {
		return o.runTorch(ctx, d)
	}
	clock := &stageClock{}
	var student *vlora.Model
	var data *preparedData
	err := clock.run("read", func() error {
		var err error
		if student, err = o.flags.loadStudent(ctx, o.input, o.original, bars{o.ErrOut, o.quiet}); err != nil {
			return err
		}
		data, err = o.flags.prepareFromDir(ctx, o.original, o.seed, bars{o.ErrOut, o.quiet})
		return err
	})
	if err != nil {
		return err
	}
	target := distillTarget{original: o.original, student: student, input: o.input,
		output: o.output, seed: o.seed, quiet: o.quiet, json: o.json, data: data, clock: clock}
	if o.out == "" {
		return o.flags.runStage(ctx, o.streams, target)
	}
	target.output, target.display = filepath.Join(d.Work(), vlora.FileName), o.output
	if err := o.flags.runStage(ctx, o.streams, target); err != nil {
		return err
	}
	if cfg, err := formats.ReadRegularFile(filepath.Join(filepath.Dir(o.input), "config.json"), formats.MaxConfigSize); err == nil {
		if err := formats.WriteFileAtomic(filepath.Join(d.Work(), "config.json"), cfg); err != nil {
			return err
		}
	}
	return copyCompanions(filepath.Dir(o.input), d.Work())
}
