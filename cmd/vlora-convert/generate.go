package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/generate"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// Defaults of the generate command.
const (
	defaultMaxTokens = 128
	// maxGenerateTokens bounds --max-tokens (the decoder's cache grows
	// with it).
	maxGenerateTokens = 1 << 20
	// minTemperature is the smallest sampling temperature above 0: below
	// it the logits divided by it overflow, and sampling becomes greedy
	// decoding in disguise or, at denormals, picks the least likely tokens.
	minTemperature = generate.MinTemperature
)

// generateOptions are the options of the generate command.
type generateOptions struct {
	streams
	model, compare, tokenizer, prompt string
	sampling                          sampling
	quiet, ignoreEOS                  bool
	kvCache                           string
}

// sampling configures the choice of each next token and the stop
// conditions (generate.Options).
type sampling = generate.Options

func newGenerateCmd(s streams) *cobra.Command {
	o := &generateOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "generate --model DIR|FILE --prompt TEXT",
		Short: "Continue a prompt with a dense model or a VLoRA file, streaming the text",
		Long: `generate encodes the prompt with the model's tokenizer.json (the model directory's, the VLoRA
file's directory's, the --compare directory's, or --tokenizer), runs the model through its
key/value cache and prints the continuation as it is produced, ending it with a newline. It stops
after --max-tokens tokens, at the end-of-sequence token (generation_config.json's eos_token_id,
else config.json's, else the tokenizer's; not with --ignore-eos), or at the model's last position.

--temperature 0 is greedy decoding (the most likely token every time). Otherwise the logits are
divided by the temperature, cut to the --top-k most likely tokens, then to the smallest set whose
probabilities sum to --top-p, and a token is drawn (seeded by --seed), in the order Hugging Face's
generate applies them.

--compare DIR runs the original model directory on the same prompt with the same settings and
prints both continuations, labelled.`,
		Example: `  vlora-convert generate --model ./bytellama-vlora --prompt "def main(" --temperature 0 --max-tokens 64
  vlora-convert generate --model ./m-vlora --compare ./m --prompt "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 1`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.model, "model", "", "model directory or VLoRA file (required)")
	fl.StringVar(&o.prompt, "prompt", "", "text to continue (required)")
	fl.StringVar(&o.compare, "compare", "", "original model directory: print its continuation too")
	fl.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer.json or a directory holding one (default: found beside the models)")
	fl.IntVar(&o.sampling.MaxTokens, "max-tokens", defaultMaxTokens, "most tokens generated")
	fl.Float64Var(&o.sampling.Temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fl.IntVar(&o.sampling.TopK, "top-k", 0, "keep the k most likely tokens (0: all)")
	fl.Float64Var(&o.sampling.TopP, "top-p", 1, "keep the most likely tokens up to this total probability (1: all)")
	fl.Uint64Var(&o.sampling.Seed, "seed", 0, "seed of the sampling")
	fl.BoolVar(&o.ignoreEOS, "ignore-eos", false, "do not stop at the end-of-sequence token")
	fl.StringVar(&o.kvCache, "kv-cache", "f32", "key/value cache precision: f32, or f16 (half the memory)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no token count and speed on stderr")
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("prompt")
	return cmd
}

// Complete finds the tokenizer when --tokenizer is not given.
func (o *generateOptions) Complete(*cobra.Command, []string) error {
	if o.tokenizer != "" {
		return nil
	}
	dirs := []string{o.model}
	if st, err := os.Stat(o.model); err == nil && !st.IsDir() {
		dirs[0] = filepath.Dir(o.model)
	}
	if o.compare != "" {
		dirs = append(dirs, o.compare)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "tokenizer.json")); err == nil {
			o.tokenizer = d
			return nil
		}
	}
	return usagef("%w: no tokenizer.json beside %s; pass --tokenizer", formats.ErrInvalid, strings.Join(dirs, ", "))
}

// Validate checks the sampling flags.
func (o *generateOptions) Validate() error {
	s := o.sampling
	switch {
	case s.MaxTokens < 1 || s.MaxTokens > maxGenerateTokens:
		return usagef("%w: --max-tokens %d must be in [1, %d]", formats.ErrInvalid, s.MaxTokens, maxGenerateTokens)
	case !(s.Temperature == 0 || s.Temperature >= minTemperature) || math.IsInf(s.Temperature, 0):
		return usagef("%w: --temperature %v: want 0 (greedy) or a finite number ≥ %g", formats.ErrInvalid, s.Temperature, minTemperature)
	case s.TopK < 0:
		return usagef("%w: --top-k %d must not be negative", formats.ErrInvalid, s.TopK)
	case !(s.TopP > 0 && s.TopP <= 1):
		return usagef("%w: --top-p %v must be in (0, 1]", formats.ErrInvalid, s.TopP)
	}
	switch strings.ToLower(o.kvCache) {
	case "f32":
		o.sampling.F16Cache = false
	case "f16":
		o.sampling.F16Cache = true
	default:
		return usagef("%w: --kv-cache %q: want f32 or f16", formats.ErrInvalid, o.kvCache)
	}
	return nil
}

// Run generates with the model (and the --compare model) and streams the
// text to Out.
func (o *generateOptions) Run(ctx context.Context) error {
	if err := o.checkModels(); err != nil {
		return err
	}
	tok, err := tokenizer.Load(o.tokenizer)
	if err != nil {
		return err
	}
	type run struct{ label, path string }
	runs := []run{{"", o.model}}
	if o.compare != "" {
		runs = []run{{"original", o.compare}, {"compressed", o.model}}
	}
	for i, r := range runs {
		m, err := model.LoadAs(r.path, model.Stored)
		if err != nil {
			return err
		}
		tightenGC(m)
		err = o.runOne(ctx, tok, m, r.label, r.path, i)
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runOne generates with m and streams the text to Out, under a heading
// when label is set (the i-th of the --compare runs).
func (o *generateOptions) runOne(ctx context.Context, tok *tokenizer.Tokenizer, m *model.Model, label, path string, i int) error {
	prompt, err := tok.EncodeContext(ctx, o.prompt, true)
	if err != nil {
		return fmt.Errorf("--prompt: %w", err)
	}
	if len(prompt) == 0 {
		return usagef("%w: the prompt encodes to no tokens and the tokenizer adds no BOS", formats.ErrInvalid)
	}
	if label != "" {
		if i > 0 {
			fmt.Fprintln(o.Out)
		}
		fmt.Fprintf(o.Out, "== %s (%s) ==\n%s", label, path, o.prompt)
	}
	opt := o.sampling
	if !o.ignoreEOS {
		opt.EOS = generate.EOS(m, tok)
	}
	stream := tok.NewStreamDecoder(true)
	last := ""
	write := func(s string) error {
		if s == "" {
			return nil
		}
		last = s
		_, err := io.WriteString(o.Out, s)
		return err
	}
	start := time.Now()
	ids, err := generate.Run(ctx, m, prompt, opt, func(id int) error { return write(stream.Next(id)) })
	if err == nil {
		err = write(stream.Flush())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !strings.HasSuffix(last, "\n") {
		fmt.Fprintln(o.Out)
	}
	if !o.quiet {
		secs := time.Since(start).Seconds()
		who := ""
		if label != "" {
			who = label + ": "
		}
		fmt.Fprintf(o.ErrOut, "%s%d prompt + %d generated tokens in %.2f s (%.1f tokens/s)\n", who, len(prompt), len(ids), secs, float64(len(ids))/secs)
	}
	return nil
}

// checkModels refuses, before anything is loaded, a malformed
// generation_config.json beside either model and a --compare model that
// is not the original of --model: another vocabulary size, or another
// tokenizer.json beside it.
func (o *generateOptions) checkModels() error {
	paths := []string{o.model}
	if o.compare != "" {
		paths = append(paths, o.compare)
	}
	for _, p := range paths {
		if _, err := model.GenerationEOS(p); err != nil {
			return err
		}
	}
	if o.compare == "" {
		return nil
	}
	a, err := model.ReadConfig(o.model)
	if err != nil {
		return err
	}
	b, err := model.ReadConfig(o.compare)
	if err != nil {
		return err
	}
	if a.VocabSize != b.VocabSize {
		return usagef("%w: --compare %s has a vocabulary of %d tokens, --model %s one of %d: not the same model family", formats.ErrInvalid, o.compare, b.VocabSize, o.model, a.VocabSize)
	}
	ta, errA := digest(filepath.Join(model.Dir(o.model), "tokenizer.json"))
	tb, errB := digest(filepath.Join(model.Dir(o.compare), "tokenizer.json"))
	if errA == nil && errB == nil && ta != tb {
		return usagef("%w: --compare %s and --model %s have different tokenizer.json files: not the same model family", formats.ErrInvalid, o.compare, o.model)
	}
	return nil
}

// digest returns the SHA-256 of the regular file at path, of at most
// maxCompanionBytes.
func digest(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := formats.OpenRegular(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxCompanionBytes+1))
	if err == nil && n > maxCompanionBytes {
		err = fmt.Errorf("%s: %w: larger than %d bytes", path, formats.ErrInvalid, maxCompanionBytes)
	}
	h.Sum(sum[:0])
	return sum, err
}
