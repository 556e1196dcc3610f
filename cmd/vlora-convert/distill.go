package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// distillFlags configure the distillation stage of compress and the
// distill command.
type distillFlags struct {
	steps, batch, seqLen, pool, evalSamples, warmup, ckptEvery int
	data, evalData, train                                      string
	tokenizer, textField                                       string
	stride                                                     int
	lr, temperature, hiddenWeight, clip, weightDecay           float64
	resume                                                     bool
	// storage is how the distilled file is stored.
	storage storageFlags
}

// addFlags registers the stage's flags (all but the step count).
func (d *distillFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&d.data, "data", "", "training data: text (.txt, .jsonl, a directory of .txt), an image folder, or safetensors with tokens/input_ids [N,T] (default: sample from the original)")
	fl.StringVar(&d.tokenizer, "tokenizer", "", "tokenizer.json (or a directory holding one) for text data (default: the original's)")
	fl.StringVar(&d.textField, "text-field", "", "field of each .jsonl line holding the text (default \"text\")")
	fl.IntVar(&d.stride, "stride", 0, "text: start a window every N tokens (default: non-overlapping windows of --seq-len)")
	fl.StringVar(&d.evalData, "eval-data", "", "evaluation data for the final KL (default: sequences sampled from the original)")
	fl.IntVar(&d.evalSamples, "eval-samples", 64, "evaluation items taken from --eval-data (16 when sampled)")
	fl.IntVar(&d.batch, "batch", distill.DefaultBatch, "sequences per step")
	fl.IntVar(&d.seqLen, "seq-len", 0, "sequence length (default: the data's; 128 when sampling)")
	fl.IntVar(&d.pool, "samples", 0, "sequences sampled from the original in data-free mode (default 4×batch)")
	fl.Float64Var(&d.lr, "lr", 0, fmt.Sprintf("peak learning rate (AdamW, warm-up then cosine decay to 10%%; default %g, or %g for quantized storage of 3 bits or more without sharing: every layer its own base)", distill.DefaultLR, distill.DefaultQATLR))
	fl.IntVar(&d.warmup, "warmup", distill.DefaultWarmup, "linear warm-up steps")
	fl.StringVar(&d.train, "train", "bases", "trainable tensors: factors (increments only), bases (and bases), all (and embeddings/head)")
	fl.Float64Var(&d.temperature, "temperature", 1, "softmax temperature of the KL term")
	fl.Float64Var(&d.hiddenWeight, "hidden-weight", 10, "weight of the layer-by-layer hidden-state matching term (relative squared error, mean over layers; 0: KL only)")
	fl.Float64Var(&d.clip, "clip", 1, "clip the global gradient norm (0: off)")
	fl.Float64Var(&d.weightDecay, "weight-decay", 0, "AdamW decoupled weight decay")
	fl.IntVar(&d.ckptEvery, "checkpoint-every", 50, "save a checkpoint every N steps (0: never)")
	fl.BoolVar(&d.resume, "resume", false, "continue from the checkpoint left by an interrupted run")
}

// validate checks the flags for a run of steps steps.
func (d *distillFlags) validate(steps int) error {
	if _, err := distill.ParseTrainSet(d.train); err != nil {
		return usageError{err}
	}
	if d.batch < 1 || d.lr < 0 || steps < 0 {
		return usagef("--batch and the step count must be positive, --lr not negative")
	}
	if d.stride < 0 || (d.seqLen > 0 && d.stride > d.seqLen) {
		return usagef("%w: --stride %d must be in [0, --seq-len]", formats.ErrInvalid, d.stride)
	}
	return nil
}

// options returns the library options the flags describe.
func (d *distillFlags) options(seed uint64) distill.Options {
	return distill.Options{
		Steps: d.steps, Batch: d.batch, LR: d.lr, Warmup: d.warmup, Train: distill.TrainSet(d.train),
		Temperature: d.temperature, HiddenWeight: d.hiddenWeight, ClipNorm: d.clip, WeightDecay: d.weightDecay,
		Seed: seed, CheckpointEvery: d.ckptEvery, Resume: d.resume,
	}
}

func resumable(outDir string) bool {
	_, err := os.Stat(filepath.Join(outDir, "distill.ckpt.safetensors"))
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
	seed          uint64
	quiet, json   bool
	// compressed, when set, is the SVD stage's summary, printed with the
	// distillation's in JSON.
	compressed *summary
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
	teacher, err := model.LoadDense(t.original)
	if errors.Is(err, model.ErrUnsupportedArchitecture) {
		return fmt.Errorf("%w: %v", distill.ErrUnsupported, err)
	}
	if err != nil {
		return err
	}
	if t.student == nil {
		if t.student, err = vlora.Load(t.input); err != nil {
			return err
		}
	}
	// Distillation trains for the storage recorded in the manifest.
	d.storage.apply(t.student)
	var last distill.Stats
	bar := newProgress(s.ErrOut, t.quiet, "distill", int64(d.steps), func() string {
		return fmt.Sprintf("loss %.4f  %.0f tok/s", last.Loss, last.TokensPerSec)
	})
	job := distillJob{
		Teacher: teacher, Student: t.student, Output: t.output,
		Data: d.data, PoolSize: d.pool, SeqLen: d.seqLen, EvalData: d.evalData, EvalSamples: d.evalSamples,
		Tokenizer: d.tokenizer, TextField: d.textField, Stride: d.stride,
		Options: d.options(t.seed),
	}
	job.Options.Progress = func(p stage.Progress) {
		last.Loss, last.TokensPerSec = p.Loss, p.TokensPerSec
		bar.Set(int64(p.Done))
	}
	if d.evalData == "" && d.evalSamples == 64 {
		job.EvalSamples = 0 // sampled evaluation uses its own default
	}
	sum, err := job.run(ctx)
	bar.Close()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w (the last checkpoint is kept; rerun with --resume)", err)
		}
		return err
	}
	return printDistill(s, sum, t)
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
	fmt.Fprintf(w, "distilled %d steps (%d tokens) in %.1f s, %.0f tokens/s\n", sum.Steps, sum.Tokens, sum.TrainSeconds, sum.TokensPerSecond)
	fmt.Fprintf(w, "train data  %s\n", sum.TrainData)
	fmt.Fprintf(w, "final loss  %.4f (mean of the last 10 steps)\n", sum.FinalLoss)
	fmt.Fprintf(w, "eval        KL %.4f, top-1 agreement %.4f on %s\n", sum.EvalKL, sum.EvalAgreement, sum.EvalData)
	fmt.Fprintf(w, "loss log    %s, %s\n", sum.LossCSV, sum.LossPlot)
	return nil
}

// distillOptions are the options of the distill command.
type distillOptions struct {
	streams
	flags         distillFlags
	original, out string
	seed          uint64
	quiet, json   bool

	// input and output are the resolved file paths, set by Complete.
	input, output string
}

func newDistillCmd(s streams) *cobra.Command {
	o := &distillOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "distill FILE|DIR --original DIR",
		Short: "Continue distilling a VLoRA file towards its original model",
		Long: `distill fine-tunes the bases, factors and deltas of a VLoRA file so that its outputs match the
original model's (KL(original‖compressed) on logits), with AdamW, warm-up and cosine decay. The
result replaces FILE (or goes to --out DIR), with the loss log (CSV) and a loss-curve PNG beside it.
Checkpoints are written every --checkpoint-every steps; after Ctrl-C, rerun with --resume.`,
		Example: `  vlora-convert distill ./bytellama-vlora --original ./bytellama --steps 300 \
      --data calib.safetensors --eval-data eval.safetensors

  # data-free: train on sequences sampled from the original
  vlora-convert distill ./m-vlora --original ./m --steps 100 --json`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.original, "original", "", "original Hugging Face model directory (required)")
	fl.StringVar(&o.out, "out", "", "write the result to this directory instead of replacing FILE")
	fl.IntVar(&o.flags.steps, "steps", 300, "optimizer steps")
	fl.Uint64Var(&o.seed, "seed", 0, "seed for batch sampling and sampled data")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output")
	fl.BoolVar(&o.json, "json", false, "print the summary as JSON")
	o.flags.addFlags(fl)
	o.flags.storage.addFlags(fl, "")
	cmd.MarkFlagRequired("original")
	return cmd
}

// Complete resolves the input file and the output path.
func (o *distillOptions) Complete(_ *cobra.Command, args []string) error {
	if err := o.flags.storage.complete(); err != nil {
		return err
	}
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

// Validate checks the stage's flags.
func (o *distillOptions) Validate() error { return o.flags.validate(o.flags.steps) }

// Run prepares the output directory (with config.json) when --out is given
// and runs the distillation stage.
func (o *distillOptions) Run(ctx context.Context) error {
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
		if cfg, err := os.ReadFile(filepath.Join(filepath.Dir(o.input), "config.json")); err == nil {
			os.WriteFile(filepath.Join(o.out, "config.json"), cfg, 0o644)
		}
		if err := copyCompanions(filepath.Dir(o.input), o.out); err != nil {
			return err
		}
	}
	return o.flags.runStage(ctx, o.streams, distillTarget{original: o.original, input: o.input, output: o.output,
		seed: o.seed, quiet: o.quiet, json: o.json})
}
