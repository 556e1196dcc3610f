package transformer

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// repoRoot returns the directory holding go.mod, searching upwards from the
// package directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
}

// sharedDir returns ../shared/<rel> relative to the repository root. When it
// is absent the test is skipped, or fails when CI=true.
func sharedDir(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared test material %s is missing (CI=true): %v", p, err)
		}
		t.Skipf("shared test material %s is absent: %v", p, err)
	}
	return p
}

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
