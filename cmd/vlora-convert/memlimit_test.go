package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestDistillLiveBytes checks the estimate against the figures that
// docs/benchmarks.md works out by hand for the TinyLlama pair (K=4, r=64,
// mean) at 4 × 256 tokens.
func TestDistillLiveBytes(t *testing.T) {
	const out = 131_074_048 // embeddings, head and final norm
	mf := &vlora.Manifest{NumLayers: 22, Counts: vlora.Counts{
		ParamsOriginal: 1_100_048_384, StackOriginal: 1_100_048_384 - out,
		ParamsStored: 445_892_608, StackStored: 445_892_608 - out,
	}}
	// The documented figures are rounded to 0.1 GB.
	const tol = 0.06e9
	for _, tc := range []struct {
		name      string
		recompute bool
		want      float64
	}{
		{"recompute", true, 8.4e9},
		{"full tape", false, 11.0e9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := distillLiveBytes(mf, 2048, 5632, 256, 32000, distill.TrainBases, tc.recompute, 4, 256, 100_000)
			if math.Abs(got-tc.want) > tol {
				t.Errorf("got %.3g bytes, want %.3g ± %.2g", got, tc.want, float64(tol))
			}
		})
	}
	t.Run("a cached teacher adds its log-probabilities", func(t *testing.T) {
		// 2 items × 256 tokens × 32000 words fit in the cache; 100,000 do not.
		few := distillLiveBytes(mf, 2048, 5632, 256, 32000, distill.TrainBases, true, 4, 256, 2)
		many := distillLiveBytes(mf, 2048, 5632, 256, 32000, distill.TrainBases, true, 4, 256, 100_000)
		if d := few - many; d != 4*2*256*32000 {
			t.Errorf("cache of 2 items adds %g bytes, want %d", d, 4*2*256*32000)
		}
	})
	t.Run("all adds the pass-through moments", func(t *testing.T) {
		bases := distillLiveBytes(mf, 2048, 5632, 256, 32000, distill.TrainBases, true, 4, 256, 100_000)
		all := distillLiveBytes(mf, 2048, 5632, 256, 32000, distill.TrainAll, true, 4, 256, 100_000)
		if d := all - bases; d != 12*out {
			t.Errorf("TrainAll adds %g bytes, want 12·P_out = %d", d, 12*out)
		}
	})
}

// TestLimitDistillMemory checks that the soft limit is set with headroom
// above the estimate, restored afterwards, and left alone under GOMEMLIMIT.
func TestLimitDistillMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Run("set and restored", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		restore := limitDistillMemory(1e9)
		if got, want := debug.SetMemoryLimit(-1), int64(1e9*distillMemoryHeadroom); got != want {
			t.Errorf("limit %d, want %d", got, want)
		}
		restore()
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("restored limit %d, want %d", got, prev)
		}
	})
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "1GiB")
		defer limitDistillMemory(1e9)()
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("limit %d under GOMEMLIMIT, want it unchanged at %d", got, prev)
		}
	})
}
