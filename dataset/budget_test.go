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
