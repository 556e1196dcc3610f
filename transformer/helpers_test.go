package transformer

import (
	"math"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// repoRoot returns the directory holding go.mod.
func repoRoot(t testing.TB) string { return testenv.RepoRoot(t) }

// sharedDir returns ../shared/<rel> (skipped when absent, failed when CI=true).
func sharedDir(t testing.TB, rel string) string { return testenv.Shared(t, rel) }

// relErr returns ‖got − want‖/‖want‖ over the first len(want) values,
// accumulated in float64.
func relErr(got, want []float32) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - float64(w)
		num += d * d
		den += float64(w) * float64(w)
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// relErr64 is relErr for float64 values.
func relErr64(got, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := got[i] - w
		num += d * d
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// loadDir loads the Hugging Face model directory dir.
func loadDir(t testing.TB, dir string) (*Model, error) {
	t.Helper()
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return Load(ck.Config, CheckpointWeights{Checkpoint: ck})
}
