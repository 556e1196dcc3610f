package dataset

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// MaxBudgetBytes bounds the memory that one flag-driven allocation may ask
// for: the tokens of a sampled or random data set, or the activations of one
// batch. It keeps a whole run well under 2 GiB even with both the original
// and the compressed model held.
const MaxBudgetBytes = 1 << 30

// CheckBudget returns an error wrapping formats.ErrInvalid when bytes exceed
// MaxBudgetBytes; what names the flags or fields that sized the request, and
// the error gives the size asked for. It is called before the allocation.
func CheckBudget(what string, bytes float64) error {
	return checkLimit(what, bytes, MaxBudgetBytes)
}

// BatchBudgetBytes is the activation memory one batch may ask for with a
// model of params stored parameters: MaxBudgetBytes, or the model's weights
// in float32 when that is more, since a model that large is only run where
// there is memory for it.
func BatchBudgetBytes(params int64) float64 {
	return max(MaxBudgetBytes, 4*float64(params))
}

// CheckBatchBudget is CheckBudget against BatchBudgetBytes(params), for the
// activations of one batch.
func CheckBatchBudget(what string, bytes float64, params int64) error {
	return checkLimit(what, bytes, BatchBudgetBytes(params))
}

func checkLimit(what string, bytes, limit float64) error {
	if bytes > limit {
		return fmt.Errorf("%w: %s ask for %s, more than the %s limit", formats.ErrInvalid, what, humanBytes(bytes), humanBytes(limit))
	}
	return nil
}

// TokensBytes returns the bytes of n sequences of t tokens.
func TokensBytes(n, t int) float64 { return float64(n) * float64(t) * 8 }

// ForwardBytes estimates the memory of one inference pass (no backward)
// over batch sequences of t tokens (or batch images) of the model cfg
// describes: per position the logits and one block's activations and
// attention scores, which the pass reuses block after block, and with
// hidden every layer's hidden state, which it keeps.
func ForwardBytes(cfg *formats.Config, batch, t int, hidden bool) float64 {
	if t <= 0 {
		t = 1
	}
	if s := cfg.Int("image_size"); s > 0 {
		p := max(cfg.Int("patch_size"), 1)
		t = (s/p)*(s/p) + 1
	}
	h := float64(cfg.HiddenSize)
	perPos := float64(cfg.VocabSize) + 2*(4*h+2*float64(cfg.Intermediate)) + float64(max(cfg.NumHeads, 1))*float64(t)
	if hidden {
		perPos += float64(max(cfg.NumLayers, 1)+1) * h
	}
	return 4 * float64(batch) * float64(t) * perPos
}

// BatchBytes estimates the activations of one forward and backward pass over
// batch sequences of t tokens (or batch images) of the model cfg describes:
// per position the logits, every layer's hidden states and MLP
// activations, and per layer the attention scores.
func BatchBytes(cfg *formats.Config, batch, t int) float64 {
	if t <= 0 {
		t = 1
	}
	if s := cfg.Int("image_size"); s > 0 {
		p := max(cfg.Int("patch_size"), 1)
		t = (s/p)*(s/p) + 1
	}
	layers := float64(max(cfg.NumLayers, 1))
	perPos := float64(cfg.VocabSize) + (layers+2)*(4*float64(cfg.HiddenSize)+2*float64(cfg.Intermediate)) +
		layers*float64(max(cfg.NumHeads, 1))*float64(t)
	return 4 * float64(batch) * float64(t) * perPos
}

func humanBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.3g GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.3g MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.0f B", b)
}

// SampleBytes estimates the memory of sampling n sequences of t tokens from
// the model cfg describes: the tokens, one step's logits and the key/value
// cache of every layer.
func SampleBytes(cfg *formats.Config, n, t int) float64 {
	kv := float64(max(cfg.NumKVHeads*cfg.HeadDim, cfg.HiddenSize, 1))
	cache := 2 * float64(max(cfg.NumLayers, 1)) * float64(n) * float64(t) * kv * 4
	return TokensBytes(n, t) + BatchBytes(cfg, n, 1) + cache
}
