package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// distillFlags configure the distillation stage of compress and the
// distill command.
type distillFlags struct {
	steps, batch, seqLen, pool, evalSamples, warmup, ckptEvery int
	data, evalData, train                                      string
	lr, temperature, hiddenWeight, clip, weightDecay           float64
	baseLRScale, passLRScale                                   float64
	resume                                                     bool
	// ran is set once the stage has printed its result.
	ran bool
}

func addDistillFlags(fl *pflag.FlagSet, d *distillFlags) {
	fl.StringVar(&d.data, "data", "", "training data: safetensors with tokens/input_ids [N,T] (default: sample from the original)")
	fl.StringVar(&d.evalData, "eval-data", "", "evaluation data for the final KL (default: sequences sampled from the original)")
	fl.IntVar(&d.evalSamples, "eval-samples", 64, "evaluation items taken from --eval-data (16 when sampled)")
	fl.IntVar(&d.batch, "batch", 16, "sequences per step")
	fl.IntVar(&d.seqLen, "seq-len", 0, "sequence length (default: the data's; 128 when sampling)")
	fl.IntVar(&d.pool, "samples", 0, "sequences sampled from the original in data-free mode (default 4×batch)")
	fl.Float64Var(&d.lr, "lr", 2e-3, "peak learning rate (AdamW, warm-up then cosine decay to 10%)")
	fl.IntVar(&d.warmup, "warmup", 20, "linear warm-up steps")
	fl.StringVar(&d.train, "train", "bases", "trainable tensors: factors (increments only), bases (and bases), all (and embeddings/head)")
	fl.Float64Var(&d.temperature, "temperature", 1, "softmax temperature of the KL term")
	fl.Float64Var(&d.baseLRScale, "base-lr-scale", 1, "learning-rate multiplier of the compound bases")
	fl.Float64Var(&d.passLRScale, "pass-lr-scale", 1, "learning-rate multiplier of the embeddings, final norm and head (--train all)")
	fl.Float64Var(&d.hiddenWeight, "hidden-weight", 10, "weight of the layer-by-layer hidden-state matching term (relative squared error, mean over layers; 0: KL only)")
	fl.Float64Var(&d.clip, "clip", 1, "clip the global gradient norm (0: off)")
	fl.Float64Var(&d.weightDecay, "weight-decay", 0, "AdamW decoupled weight decay")
	fl.IntVar(&d.ckptEvery, "checkpoint-every", 50, "save a checkpoint every N steps (0: never)")
	fl.BoolVar(&d.resume, "resume", false, "continue from the checkpoint left by an interrupted run")
}

func resumable(outDir string) bool {
	_, err := os.Stat(filepath.Join(outDir, "distill.ckpt.safetensors"))
	_, err2 := os.Stat(filepath.Join(outDir, vlora.FileName))
	return err == nil && err2 == nil
}

func init() {
	extraCommands = append(extraCommands, newDistillCmd)
	compressFlagHooks = append(compressFlagHooks, func(cmd *cobra.Command, f *compressFlags) {
		cmd.Flags().IntVar(&f.distill.steps, "distill-steps", 300, "distillation steps after the SVD stage (0: SVD only)")
		addDistillFlags(cmd.Flags(), &f.distill)
	})
	compressPostHooks = append(compressPostHooks, func(cmd *cobra.Command, f *compressFlags, res *convert.Result) error {
		if f.distill.steps <= 0 {
			return nil
		}
		if !f.json {
			fmt.Fprintln(cmd.OutOrStdout())
		}
		err := runDistill(cmd, f.model, res.Path, res.Path, f.seed, f.quiet, f.json, &f.distill, f.distill.steps, f.compressSummary)
		if errors.Is(err, distill.ErrUnsupported) {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: %v; the file holds the SVD initialisation only\n", err)
			return nil
		}
		return err
	})
}

func newDistillCmd() *cobra.Command {
	var (
		d             distillFlags
		original, out string
		seed          uint64
		quiet, asJSON bool
	)
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
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := vlora.ResolvePath(args[0])
			if err != nil {
				return usageError{err}
			}
			output := in
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return fmt.Errorf("output directory: %w", err)
				}
				output = filepath.Join(out, vlora.FileName)
				if cfg, err := os.ReadFile(filepath.Join(filepath.Dir(in), "config.json")); err == nil {
					os.WriteFile(filepath.Join(out, "config.json"), cfg, 0o644)
				}
			}
			return runDistill(cmd, original, in, output, seed, quiet, asJSON, &d, d.steps, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&original, "original", "", "original Hugging Face model directory (required)")
	fl.StringVar(&out, "out", "", "write the result to this directory instead of replacing FILE")
	fl.IntVar(&d.steps, "steps", 300, "optimizer steps")
	fl.Uint64Var(&seed, "seed", 0, "seed for batch sampling and sampled data")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	fl.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	addDistillFlags(fl, &d)
	cmd.MarkFlagRequired("original")
	return cmd
}

// runDistill runs the distillation stage and prints its summary.
func runDistill(cmd *cobra.Command, original, in, out string, seed uint64, quiet, asJSON bool, d *distillFlags, steps int, compressed *summary) error {
	set, err := distill.ParseTrainSet(d.train)
	if err != nil {
		return usageError{err}
	}
	if d.batch < 1 || d.lr <= 0 || steps < 0 {
		return usagef("--batch, --lr and the step count must be positive")
	}
	var last distill.Stats
	bar := newProgress(quiet, "distill", int64(steps), func() string {
		return fmt.Sprintf("loss %.4f  %.0f tok/s", last.Loss, last.TokensPerSec)
	})
	job := distill.Job{
		Original: original, Input: in, Output: out,
		Data: d.data, PoolSize: d.pool, SeqLen: d.seqLen, EvalData: d.evalData, EvalSamples: d.evalSamples,
		Options: distill.Options{
			Steps: steps, Batch: d.batch, LR: d.lr, Warmup: d.warmup, Train: set,
			Temperature: d.temperature, HiddenWeight: d.hiddenWeight, ClipNorm: d.clip, WeightDecay: d.weightDecay,
			LRScales: distill.LRScales{Bases: d.baseLRScale, Passthrough: d.passLRScale},
			Seed:     seed, CheckpointEvery: d.ckptEvery, Resume: d.resume,
			Progress: func(s distill.Stats) {
				last = s
				bar.Set(int64(s.Step))
			},
		},
	}
	if d.evalData == "" && d.evalSamples == 64 {
		job.EvalSamples = 0 // sampled evaluation uses its own default
	}
	sum, err := distill.RunJob(cmd.Context(), job)
	bar.Close()
	if err != nil {
		if cmd.Context().Err() != nil {
			return fmt.Errorf("interrupted: %w (the last checkpoint is kept; rerun with --resume)", err)
		}
		return err
	}
	d.ran = true
	if asJSON {
		if compressed != nil {
			compressed.ParamsStored = sum.ParamsStored
			return printJSON(struct {
				*distill.Summary
				Compress *summary `json:"compress"`
			}{sum, compressed})
		}
		return printJSON(sum)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "wrote %s\n", sum.Output)
	fmt.Fprintf(w, "distilled %d steps (%d tokens) in %.1f s, %.0f tokens/s\n", sum.Steps, sum.Tokens, sum.TrainSeconds, sum.TokensPerSecond)
	fmt.Fprintf(w, "train data  %s\n", sum.TrainData)
	fmt.Fprintf(w, "final loss  %.4f (mean of the last 10 steps)\n", sum.FinalLoss)
	fmt.Fprintf(w, "eval        KL %.4f, top-1 agreement %.4f on %s\n", sum.EvalKL, sum.EvalAgreement, sum.EvalData)
	fmt.Fprintf(w, "loss log    %s, %s\n", sum.LossCSV, sum.LossPlot)
	return nil
}
