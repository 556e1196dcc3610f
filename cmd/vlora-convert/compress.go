package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// compressFlags are the flags of the compress command.
type compressFlags struct {
	model, out, base, svd, dtype string
	k, rank, workers             int
	oversample, powerIters       int
	energy                       float64
	seed                         uint64
	quiet, json                  bool
	distill                      distillFlags
	plan                         planFlags
	// compressSummary is the SVD stage's result, for combined output.
	compressSummary *summary
}

func newCompressCmd() *cobra.Command {
	var f compressFlags
	cmd := &cobra.Command{
		Use:   "compress --model DIR --out DIR",
		Short: "Compress a Hugging Face checkpoint into a VLoRA file",
		Long: `compress reads a Hugging Face model directory lazily, finds its repeated layer stack
(prefix.{i}.suffix), cuts it into compounds of K layers, factorizes every layer's difference from
its compound base by truncated SVD, and writes DIR/model.vlora.safetensors and DIR/config.json.`,
		Example: `  # K=8, rank 32, first layer of each compound as base
  vlora-convert compress --model ./bytellama --out ./bytellama-vlora --compound-size 8 --rank 32

  # keep 90% of each increment's energy, mean base, randomized SVD, bf16 output
  vlora-convert compress --model ./m --out ./m-vlora --energy 0.9 --base mean --svd randomized --dtype bf16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCompress(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "Hugging Face model directory (required)")
	fl.StringVar(&f.out, "out", "", "output directory (required)")
	fl.IntVarP(&f.k, "compound-size", "k", 8, "layers per compound (K)")
	fl.IntVarP(&f.rank, "rank", "r", 0, "increment rank (default 32 unless --energy is given)")
	fl.Float64Var(&f.energy, "energy", 0, "keep this fraction of each increment's squared singular values (0<E<=1; 1 is exact)")
	fl.StringVar(&f.base, "base", "first", "compound base: first or mean")
	fl.StringVar(&f.svd, "svd", "exact", "SVD method: exact or randomized")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the randomized SVD")
	fl.IntVar(&f.oversample, "oversample", 10, "extra sketch columns of the randomized SVD")
	fl.IntVar(&f.powerIters, "power-iters", convert.DefaultPowerIters, "power iterations of the randomized SVD")
	fl.StringVar(&f.dtype, "dtype", "f32", "stored dtype: f32, f16 or bf16")
	fl.IntVar(&f.workers, "workers", 0, "tensors factorized in parallel (default: all cores)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress output")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("out")
	for _, hook := range compressFlagHooks {
		hook(cmd, &f)
	}
	return cmd
}

// compressFlagHooks let other files add flags to compress.
var compressFlagHooks []func(*cobra.Command, *compressFlags)

// compressPostHooks run after the SVD stage (e.g. distillation); they may
// print their own results.
var compressPostHooks []func(cmd *cobra.Command, f *compressFlags, res *convert.Result) error

func compressOptions(f *compressFlags) (convert.Options, error) {
	opt := convert.DefaultOptions()
	opt.CompoundSize = f.k
	opt.Rank, opt.Energy = f.rank, f.energy
	if f.rank == 0 && f.energy == 0 {
		opt.Rank = 32
	}
	if f.rank != 0 && f.energy != 0 {
		return opt, usagef("--rank and --energy are exclusive")
	}
	if f.energy < 0 || f.energy > 1 {
		return opt, usagef("--energy %v must be in (0, 1]", f.energy)
	}
	if f.rank < 0 {
		return opt, usagef("--rank %d must be positive", f.rank)
	}
	if f.k < 1 {
		return opt, usagef("--compound-size %d must be at least 1", f.k)
	}
	base, err := vlora.ParseBaseMode(f.base)
	if err != nil {
		return opt, usageError{err}
	}
	opt.Base = base
	m, err := svd.ParseMethod(f.svd)
	if err != nil {
		return opt, usageError{err}
	}
	opt.SVD, opt.Seed = m, f.seed
	opt.Oversample, opt.PowerIters = f.oversample, f.powerIters
	if f.oversample < 0 || f.powerIters < 0 {
		return opt, usagef("--oversample and --power-iters must not be negative")
	}
	if f.oversample == 0 {
		opt.Oversample = -1 // none
	}
	if f.powerIters == 0 {
		opt.PowerIters = -1
	}
	dt, err := formats.ParseDType(f.dtype)
	if err != nil || (dt != formats.F32 && dt != formats.F16 && dt != formats.BF16) {
		return opt, usagef("--dtype %q: want f32, f16 or bf16", f.dtype)
	}
	opt.DType = dt
	opt.Workers = f.workers
	return opt, nil
}

func runCompress(cmd *cobra.Command, f *compressFlags) error {
	opt, err := compressOptions(f)
	if err != nil {
		return err
	}
	if f.distill.resume && resumable(f.out) {
		// A checkpoint from an interrupted distillation: skip the SVD stage.
		m, file, err := vlora.ReadManifest(f.out)
		if err != nil {
			return err
		}
		file.Close()
		res := &convert.Result{Path: file.Path(), Manifest: m}
		for _, hook := range compressPostHooks {
			if err := hook(cmd, f, res); err != nil {
				return err
			}
		}
		return nil
	}
	bar := newProgress(f.quiet, "compress", 1, nil)
	opt.Progress = func(p convert.Progress) {
		if bar.bar != nil {
			bar.bar.SetTotal(int64(p.Total), false)
		}
		bar.Set(int64(p.Done))
	}
	// The SVD stage's live memory is bounded by a few layer tensors; a soft
	// limit keeps the garbage collector from letting the heap double past it.
	if err := applyPlan(cmd.Context(), f, &opt, cmd.ErrOrStderr()); err != nil {
		return err
	}
	prevLimit := int64(-1)
	if os.Getenv("GOMEMLIMIT") == "" {
		prevLimit = debug.SetMemoryLimit(compressMemoryLimit)
	}
	res, err := convert.Compress(cmd.Context(), f.model, f.out, opt)
	if prevLimit >= 0 {
		debug.SetMemoryLimit(prevLimit)
	}
	bar.Close()
	if err != nil {
		return err
	}
	if err := applyRefit(cmd.Context(), f, res.Path, cmd.ErrOrStderr()); err != nil {
		return err
	}
	s := summarize(res.Manifest)
	if !f.json {
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "wrote %s\n", res.Path)
		printSummary(w, s)
		for _, fb := range res.DenseFallbacks {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: stored dense: %s\n", fb)
		}
	}
	f.compressSummary = &s
	for _, hook := range compressPostHooks {
		if err := hook(cmd, f, res); err != nil {
			return err
		}
	}
	if f.json && !f.distill.ran {
		return printJSON(s)
	}
	return nil
}

// compressMemoryLimit is the soft heap limit of the SVD stage (1.5 GiB),
// unless GOMEMLIMIT says otherwise.
const compressMemoryLimit = 1536 << 20

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
