package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/verify"
)

// verifyOptions are the options of the verify command.
type verifyOptions struct {
	streams
	original, compressed string
	opt                  verify.Options
	json, quiet          bool
}

func newVerifyCmd(s streams) *cobra.Command {
	o := &verifyOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "verify --original DIR --compressed FILE|DIR",
		Short: "Check a VLoRA file against its original: integrity, KL, agreement, perplexity",
		Long: `verify first checks integrity (every original tensor represented with its shape and dtype, the
manifest consistent with the stored tensors, source SHA-256 matching the original given), then
runs both models on data and reports KL(original‖compressed) per position (mean, p95, p99), top-1
agreement, NLL and perplexity of both (LMs), accuracy (classifiers with --labels), the relative
error of every layer's hidden state, parameter and byte counts, and the file's bits per original
weight. Beside it, the same-size baseline: the original with every 2-D tensor rounded to nearest
(--baseline; by default the largest standard size not above the file's), measured on the same
data; the report says when the file loses to it, and --fail-if-worse makes that a failure (exit 1).

Without --data, language models are checked on sequences sampled from the original model and
encoders and ViT on random inputs (seeded by --seed).

Text data is encoded with the original's tokenizer.json (or --tokenizer) and cut into windows of
--seq-len tokens. Without --stride the perplexity is llama-perplexity's: non-overlapping windows,
each with BOS as its first token when the tokenizer adds one, scoring the second half of each.
With --stride N it is Hugging Face's sliding-window perplexity: a window every N tokens, each
scoring only the tokens no earlier window scored, with the rest of the window as context. KL and
agreement are measured on the same positions.

Image folders (PNG, JPEG; one sub-folder per class with --labels-from-folders) are preprocessed as
the original's preprocessor_config.json says.

Exit codes: 0 every threshold holds, 1 a threshold is missed, 2 invalid input or inconsistent file.`,
		Example: `  vlora-convert verify --original ./bytellama --compressed ./bytellama-vlora \
      --data eval.safetensors --samples 64 --max-kl 0.5 --min-agreement 0.7

  # perplexity of both models on a text file (llama-perplexity's windows, then sliding windows)
  vlora-convert verify --original ./m --compressed ./m-vlora --data wiki.test.raw.txt --seq-len 512
  vlora-convert verify --original ./m --compressed ./m-vlora --data wiki.test.raw.txt --seq-len 512 --stride 256

  # accuracy of a ViT on an image folder
  vlora-convert verify --original ./vit --compressed ./vit-vlora --data ./val-images --labels-from-folders

  vlora-convert verify --original ./bytellama --compressed ./bytellama-vlora --json | jq .kl_mean`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.original, "original", "", "original Hugging Face model directory (required)")
	fl.StringVar(&o.compressed, "compressed", "", "VLoRA file or directory (required)")
	fl.StringVar(&o.opt.Data, "data", "", "evaluation data: text (.txt, .jsonl, a directory of .txt), an image folder, or safetensors with tokens/input_ids [N,T] or pixel_values [N,C,H,W]")
	fl.StringVar(&o.opt.Labels, "labels", "", "name of an int label tensor in --data (classifiers)")
	fl.BoolVar(&o.opt.LabelsFromFolders, "labels-from-folders", false, "label the images of an image folder by their sub-folder (sorted names, as torchvision's ImageFolder)")
	fl.StringVar(&o.opt.Tokenizer, "tokenizer", "", "tokenizer.json (or a directory holding one) for text data (default: the original's)")
	fl.StringVar(&o.opt.TextField, "text-field", "", "field of each .jsonl line holding the text (default \"text\")")
	fl.IntVar(&o.opt.Stride, "stride", 0, "text: Hugging Face sliding windows every N tokens (default: llama-perplexity's non-overlapping windows, second half scored)")
	fl.IntVar(&o.opt.Samples, "samples", 0, fmt.Sprintf("number of sequences/images, 0…2^20 (0: all of --data, or %d generated)", verify.DefaultSamples))
	fl.IntVar(&o.opt.SeqLen, "seq-len", 0, fmt.Sprintf("sequence length, 0…65536 (0: the data's, or %d generated)", dataset.DefaultSeqLen))
	fl.Uint64Var(&o.opt.Seed, "seed", 0, "seed for generated inputs")
	fl.IntVar(&o.opt.Batch, "batch", verify.DefaultBatch, "evaluation batch size, 1…65536")
	fl.StringVar(&o.opt.Baseline, "baseline", verify.BaselineAuto, "same-size round-to-nearest baseline of the original, measured on the same data: auto (the largest standard size not above the file's bits per weight), none, int8 (per row), int4, int3 or int2 (groups of 32, F16 scales, symmetric), or int4/g64, int4/g128, int3/g64 … int2/g128")
	fl.Float64Var(&o.opt.MaxKL, "max-kl", 0, "fail (exit 1) when the mean KL exceeds this (finite, ≥ 0; 0: off)")
	fl.Float64Var(&o.opt.MinAgreement, "min-agreement", 0, "fail (exit 1) when top-1 agreement is below this, [0, 1] (0: off)")
	fl.BoolVar(&o.opt.FailIfWorse, "fail-if-worse", false, "fail (exit 1) when the file loses to its same-size baseline (larger, or further from the original by mean KL)")
	fl.BoolVar(&o.json, "json", false, "print the report as JSON")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output")
	cmd.MarkFlagRequired("original")
	cmd.MarkFlagRequired("compressed")
	return cmd
}

// Complete reads the --baseline name case-insensitively.
func (o *verifyOptions) Complete(*cobra.Command, []string) error {
	o.opt.Baseline = strings.ToLower(o.opt.Baseline)
	return nil
}

// Validate checks every numeric flag against its documented range.
func (o *verifyOptions) Validate() error {
	return firstError(
		intRange("samples", o.opt.Samples, 0, maxSamples),
		intRange("seq-len", o.opt.SeqLen, 0, maxSeqLen),
		intRange("stride", o.opt.Stride, 0, maxSeqLen),
		intRange("batch", o.opt.Batch, 1, maxBatch),
		floatRange("max-kl", o.opt.MaxKL, 0, math.MaxFloat64, false),
		floatRange("min-agreement", o.opt.MinAgreement, 0, 1, false),
	)
}

// Run loads both models, verifies and prints the report; a missed threshold
// is exit code 1 after the report.
//
// Both models run on their weights as stored (model.Stored), as
// verify.RunPaths does.
func (o *verifyOptions) Run(ctx context.Context) error {
	if err := verify.CheckCompressedPath(o.compressed); err != nil {
		return err
	}
	var clock stageClock
	var orig, comp *model.Model
	err := clock.run("read", func() error {
		var err error
		if orig, err = model.LoadDenseAs(o.original, model.Stored); err != nil {
			return err
		}
		comp, err = model.LoadAs(o.compressed, model.Stored)
		return err
	})
	if orig != nil {
		defer orig.Close()
	}
	if err != nil {
		return err
	}
	defer comp.Close()
	tightenGC(orig, comp)
	var rep *verify.Report
	err = clock.run("evaluate", func() error {
		bar := newProgress(o.ErrOut, o.quiet, "evaluate", 1, nil)
		opt := o.opt
		opt.Progress = bar.Report
		var err error
		rep, err = verify.Run(ctx, orig, comp, opt)
		bar.Close()
		return err
	})
	if rep == nil {
		return err
	}
	if err != nil && !errors.Is(err, verify.ErrThreshold) {
		return err
	}
	if o.json {
		out := struct {
			*verify.Report
			Stages []stageStat `json:"stages"`
		}{rep, clock.stats}
		if perr := printJSON(o.Out, out); perr != nil {
			return perr
		}
	} else {
		printReport(o.Out, rep)
	}
	if err != nil {
		return exitError{code: exitFailure, msg: err.Error()}
	}
	return nil
}

func f4(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", *v)
}

func printReport(w io.Writer, r *verify.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "original\t%s\n", r.Original)
	fmt.Fprintf(tw, "compressed\t%s\n", r.Compressed)
	fmt.Fprintf(tw, "data\t%s\n", r.Data)
	if r.PerplexityMethod != "" {
		fmt.Fprintf(tw, "windows\t%s\n", r.PerplexityMethod)
	}
	fmt.Fprintf(tw, "positions\t%d\n", r.Positions)
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "integrity\t")
	for _, c := range r.Integrity {
		fmt.Fprintf(tw, "  %s\t%s  %s\n", c.Name, okStr(c.OK), c.Detail)
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintf(tw, "parameters\t%d → %d (%.1f%% fewer)\n", r.ParamsOriginal, r.ParamsCompressed, pct(r.ParamsCompressed, r.ParamsOriginal))
	fmt.Fprintf(tw, "bytes\t%s → %s\n", humanBytes(r.BytesOriginal), humanBytes(r.BytesCompressed))
	if r.BitsPerWeight != nil {
		fmt.Fprintf(tw, "bits per weight\t%.3f per original weight\n", *r.BitsPerWeight)
	}
	for i, g := range r.Plan {
		label := ""
		if i == 0 {
			label = "plan"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, g)
	}
	if r.KLMean != nil {
		fmt.Fprintf(tw, "Mean    KLD\t%s\n", f4(r.KLMean))
		fmt.Fprintf(tw, "95.0%%   KLD\t%s\n", f4(r.KLP95))
		fmt.Fprintf(tw, "99.0%%   KLD\t%s\n", f4(r.KLP99))
		fmt.Fprintf(tw, "Maximum KLD\t%s\n", f4(r.KLMax))
		fmt.Fprintf(tw, "Same top-1\t%.2f %%\n", 100**r.Top1Agreement)
	}
	if r.NLLOriginal != nil {
		fmt.Fprintf(tw, "NLL original\t%s  (PPL %.4f)\n", f4(r.NLLOriginal), *r.PPLOriginal)
		fmt.Fprintf(tw, "NLL compressed\t%s  (PPL %.4f)\n", f4(r.NLLCompressed), *r.PPLCompressed)
		fmt.Fprintf(tw, "PPL ratio\t%s\n", f4(r.PPLRatio))
	}
	if r.AccuracyOriginal != nil {
		fmt.Fprintf(tw, "accuracy\t%.4f original, %.4f compressed\n", *r.AccuracyOriginal, *r.AccuracyCompressed)
	}
	printBaseline(tw, r)
	fmt.Fprintf(tw, "output rel error\t%s\n", f4(r.OutputRelError))
	if r.PoolerRelError != nil {
		fmt.Fprintf(tw, "pooler rel error\t%s\n", f4(r.PoolerRelError))
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "hidden state\trel error")
	for i, e := range r.LayerRelError {
		label := fmt.Sprintf("  %d", i)
		if i == 0 {
			label += " (embeddings)"
		}
		fmt.Fprintf(tw, "%s\t%.4f\n", label, e)
	}
	for _, c := range r.Thresholds {
		fmt.Fprintf(tw, "threshold %s\t%s  %s\n", c.Name, okStr(c.OK), c.Detail)
	}
	verdict := "PASS"
	switch {
	case !r.Pass:
		verdict = "FAIL"
	case r.Baseline != nil && !r.Baseline.CompressedWins:
		verdict = "PASS (every threshold given holds; the file loses to its baseline, which --fail-if-worse makes a failure)"
	}
	fmt.Fprintf(tw, "result\t%s\n", verdict)
	tw.Flush()
}

func okStr(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * (1 - float64(a)/float64(b))
}

// printBaseline prints the compressed model and its same-size baseline
// side by side, and which of the two wins.
func printBaseline(w io.Writer, r *verify.Report) {
	b := r.Baseline
	if b == nil {
		return
	}
	fmt.Fprintln(w, "\t")
	how := "named by --baseline"
	if b.Automatic {
		how = "the largest standard scheme not above the file's size"
	}
	fmt.Fprintf(w, "same-size baseline\tround to nearest %s (%s)\n", b.Scheme, how)
	fmt.Fprintf(w, "  \tcompressed  baseline\n")
	fmt.Fprintf(w, "  bits per weight\t%10.3f  %8.3f\n", *r.BitsPerWeight, b.BitsPerWeight)
	fmt.Fprintf(w, "  mean KLD\t%10.4f  %8.4f\n", *r.KLMean, b.KLMean)
	fmt.Fprintf(w, "  same top-1\t%9.2f%%  %7.2f%%\n", 100**r.Top1Agreement, 100*b.Top1Agreement)
	if r.NLLCompressed != nil {
		fmt.Fprintf(w, "  NLL\t%10.4f  %8.4f\n", *r.NLLCompressed, b.NLL)
	}
	if b.CompressedWins && b.Automatic && *r.BitsPerWeight > b.BitsPerWeight {
		fmt.Fprintf(w, "  verdict\tthe file is closer to the original than round to nearest %s, the largest standard rounding no larger than it\n", b.Scheme)
	} else if b.CompressedWins {
		fmt.Fprintf(w, "  verdict\tthe file is no larger and closer to the original than round to nearest %s\n", b.Scheme)
	} else {
		fmt.Fprintf(w, "  verdict\tTHE FILE LOSES to round to nearest %s (%s)\n", b.Scheme, lossReason(r))
	}
	fmt.Fprintln(w, "\t")
}

// lossReason says in what the compressed model loses to its baseline.
func lossReason(r *verify.Report) string {
	b := r.Baseline
	larger, further := *r.BitsPerWeight > b.BitsPerWeight && !b.Automatic, *r.KLMean > b.KLMean
	switch {
	case larger && further:
		return fmt.Sprintf("larger, %.3f against %.3f bits per weight, and further from the original, KL %.4f against %.4f", *r.BitsPerWeight, b.BitsPerWeight, *r.KLMean, b.KLMean)
	case larger:
		return fmt.Sprintf("larger: %.3f against %.3f bits per weight", *r.BitsPerWeight, b.BitsPerWeight)
	}
	return fmt.Sprintf("further from the original: KL %.4f against %.4f", *r.KLMean, b.KLMean)
}
