// Package generate continues a prompt with a causal language model: token
// by token through the model's key/value cache (transformer.Decoder), each
// next token chosen greedily or sampled (temperature, top-k, top-p, a
// seed), stopping at a token budget, an end-of-sequence token or the
// model's last position, and handing each token (or the text, as it
// becomes printable) to the caller as it is produced.
//
// Load the model with model.LoadAs(path, model.Stored) to decode on the
// weights as stored: a decoding step then reads every stored byte once.
package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/tokenizer"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// Options configures a generation. With MaxTokens set, the zero value is
// greedy decoding without stop tokens.
type Options struct {
	// MaxTokens is the most tokens generated after the prompt (≥ 1).
	MaxTokens int
	// Temperature divides the logits; 0 selects the most likely token
	// (greedy decoding, ties to the lowest id).
	Temperature float64
	// TopK > 0 keeps the TopK most likely tokens.
	TopK int
	// TopP in (0, 1) keeps the smallest set of most likely tokens whose
	// probabilities sum to at least TopP; 0 and 1 keep all.
	TopP float64
	// Seed seeds the random choice.
	Seed uint64
	// EOS lists the end-of-sequence ids: generation stops after emitting
	// one. EOS gives the model's.
	EOS []int
	// F16Cache keeps the key/value cache in half precision
	// (transformer.DecoderOptions): half its memory, the logits rounded
	// accordingly.
	F16Cache bool
}

// MinTemperature is the smallest sampling temperature above 0: below it
// the logits divided by the temperature overflow and sampling stops being
// what the user asked for.
const MinTemperature = 1e-3

// Validate reports options out of range, wrapping formats.ErrInvalid.
func (o Options) Validate() error {
	switch {
	case o.MaxTokens < 1:
		return fmt.Errorf("generate: %w: MaxTokens %d must be at least 1", formats.ErrInvalid, o.MaxTokens)
	case !(o.Temperature == 0 || o.Temperature >= MinTemperature) || math.IsInf(o.Temperature, 0):
		return fmt.Errorf("generate: %w: Temperature %v must be 0 (greedy) or a finite number ≥ %g", formats.ErrInvalid, o.Temperature, MinTemperature)
	case o.TopK < 0:
		return fmt.Errorf("generate: %w: TopK %d must not be negative", formats.ErrInvalid, o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return fmt.Errorf("generate: %w: TopP %v must be in [0, 1]", formats.ErrInvalid, o.TopP)
	}
	return nil
}

// Run continues prompt with m through its key/value cache (the prompt in
// one pass, transformer.Decoder.Prefill, then a step per token), calling emit
// with each new token as it is chosen, and returns the new tokens. It stops
// after opt.MaxTokens tokens, after a token of opt.EOS (which is emitted
// and returned), or at the model's last learned position. When ctx is
// cancelled or emit fails, it returns the tokens so far with the error.
//
// A model that is not a causal language model, a prompt token outside the
// vocabulary, or a prompt that fills the model's positions gives an error
// wrapping formats.ErrInvalid.
func Run(ctx context.Context, m *model.Model, prompt []int, opt Options, emit func(id int) error) ([]int, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if !m.IsCausalLM() {
		return nil, fmt.Errorf("%w: generate needs a causal language model, not %s", formats.ErrInvalid, m.Config.Architecture())
	}
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: an empty prompt", formats.ErrInvalid)
	}
	vocab := m.Config.VocabSize
	for i, id := range prompt {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("%w: prompt token %d at position %d outside the model's vocabulary [0, %d)", formats.ErrInvalid, id, i, vocab)
		}
	}
	total := len(prompt) + opt.MaxTokens
	if mp := m.Config.MaxPositions; mp > 0 && total > mp {
		total = mp
	}
	if len(prompt) >= total {
		return nil, fmt.Errorf("%w: the prompt's %d tokens fill the model's %d positions", formats.ErrInvalid, len(prompt), total)
	}
	dec, err := m.Net.NewDecoderWith(1, total, transformer.DecoderOptions{F16Cache: opt.F16Cache})
	if errors.Is(err, transformer.ErrNotCausal) {
		return nil, fmt.Errorf("%w: generate needs a causal language model: %v", formats.ErrInvalid, err)
	}
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6e6e))
	// The prompt goes through in one pass (the matrix-multiply path),
	// then one decoding step per token.
	logits, err := dec.Prefill(prompt, len(prompt))
	if err != nil {
		return nil, err
	}
	var out []int
	for len(prompt)+len(out) < total {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		id := opt.Next(logits[:vocab], rng)
		out = append(out, id)
		if err := emit(id); err != nil {
			return out, err
		}
		if slices.Contains(opt.EOS, id) || len(prompt)+len(out) == total {
			break
		}
		if logits, err = dec.Step([]int{id}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Stream encodes prompt with tok (adding its special tokens), continues it
// with m as Run does, and writes the continuation's text to w as it
// becomes printable (tokenizer.StreamDecoder, special tokens skipped). It
// returns the prompt's tokens and the generated ones.
func Stream(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, prompt string, opt Options, w io.Writer) (promptIDs, ids []int, err error) {
	promptIDs, err = tok.EncodeContext(ctx, prompt, true)
	if err != nil {
		return nil, nil, err
	}
	if len(promptIDs) == 0 {
		return nil, nil, fmt.Errorf("%w: the prompt encodes to no tokens and the tokenizer adds no BOS", formats.ErrInvalid)
	}
	stream := tok.NewStreamDecoder(true)
	write := func(s string) error {
		if s == "" {
			return nil
		}
		_, err := io.WriteString(w, s)
		return err
	}
	ids, err = Run(ctx, m, promptIDs, opt, func(id int) error { return write(stream.Next(id)) })
	if err == nil {
		err = write(stream.Flush())
	}
	return promptIDs, ids, err
}

// EOS returns the end-of-sequence ids of m: generation_config.json's
// eos_token_id (a number or a list) beside the model (in its directory,
// or beside its file), else config.json's, else the tokenizer's (tok may
// be nil); none when no source names one.
func EOS(m *model.Model, tok *tokenizer.Tokenizer) []int {
	if m.Path != "" {
		// A malformed generation_config.json is reported by
		// model.GenerationEOS; here it only stops being a source.
		if ids, err := model.GenerationEOS(m.Path); err == nil && len(ids) > 0 {
			return ids
		}
	}
	if ids := intList(m.Config.Raw["eos_token_id"]); len(ids) > 0 {
		return ids
	}
	if tok != nil {
		if e := tok.EOS(); e >= 0 {
			return []int{e}
		}
	}
	return nil
}

// intList reads a JSON number or list of numbers.
func intList(v any) []int {
	switch x := v.(type) {
	case float64:
		return []int{int(x)}
	case []any:
		var ids []int
		for _, e := range x {
			if f, ok := e.(float64); ok {
				ids = append(ids, int(f))
			}
		}
		return ids
	}
	return nil
}

// Next chooses the token that follows logits: the arg max when
// Temperature is 0; otherwise the logits are divided by the temperature,
// cut to the TopK most likely tokens, then to the smallest set whose
// probabilities sum to TopP, and a token is drawn from rng, in the order
// Hugging Face's generate applies them.
func (o Options) Next(logits []float32, rng *rand.Rand) int {
	if o.Temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	// Candidates sorted by decreasing logit (ties by id, for determinism).
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return 0
	})
	if o.TopK > 0 && o.TopK < len(idx) {
		idx = idx[:o.TopK]
	}
	p := make([]float64, len(idx))
	mx := float64(logits[idx[0]]) / o.Temperature
	var sum float64
	for i, id := range idx {
		p[i] = math.Exp(float64(logits[id])/o.Temperature - mx)
		sum += p[i]
	}
	keep := len(idx)
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i := range p {
			cum += p[i] / sum
			if cum >= o.TopP {
				keep = i + 1
				break
			}
		}
	}
	var kept float64
	for _, v := range p[:keep] {
		kept += v
	}
	u := rng.Float64() * kept
	for i, v := range p[:keep] {
		u -= v
		if u < 0 {
			return idx[i]
		}
	}
	return idx[keep-1]
}
