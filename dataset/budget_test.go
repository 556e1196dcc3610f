package dataset

import (
	"errors"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// TestCheckBatchBudget checks that a batch may ask for MaxBudgetBytes, or
// for the model's float32 weights when they are larger, and no more.
func TestCheckBatchBudget(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name   string
		bytes  float64
		params int64
		ok     bool
	}{
		{"small model, within the fixed budget", 0.9 * gib, 1_500_000, true},
		{"small model, over the fixed budget", 1.1 * gib, 1_500_000, false},
		{"1.1 B model, 4 × 256 tokens", 2.59 * gib, 1_100_048_384, true},
		{"1.1 B model, over its weights", 4.2 * gib, 1_100_048_384, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBatchBudget("batch", tc.bytes, tc.params)
			if tc.ok && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if !tc.ok && !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("error %v, want one wrapping formats.ErrInvalid", err)
			}
		})
	}
}

// TestForwardBytes checks the inference estimate against a hand count on a
// TinyLlama-shaped config: 32 × 256 positions of 4-byte values, each with
// the logits (32000), one block's activations (2 × (4·2048 + 2·5632)) and
// one block's attention scores (32 heads × 256), plus 23 hidden states of
// 2048 when they are kept; and that it stays below the training estimate.
func TestForwardBytes(t *testing.T) {
	cfg := &formats.Config{VocabSize: 32000, HiddenSize: 2048, Intermediate: 5632, NumLayers: 22, NumHeads: 32}
	const pos = 32 * 256
	for _, tc := range []struct {
		name   string
		hidden bool
		want   float64
	}{
		{"logits only", false, 4 * pos * (32000 + 2*(4*2048+2*5632) + 32*256)},
		{"with hidden states", true, 4 * pos * (32000 + 2*(4*2048+2*5632) + 32*256 + 23*2048)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ForwardBytes(cfg, 32, 256, tc.hidden)
			if got != tc.want {
				t.Errorf("ForwardBytes = %g, want %g", got, tc.want)
			}
			if train := BatchBytes(cfg, 32, 256); got >= train {
				t.Errorf("inference estimate %g not below the training estimate %g", got, train)
			}
		})
	}
}
