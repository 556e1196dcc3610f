// Package testenv locates shared test material for the project's tests.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, walking up from the
// working directory.
func RepoRoot(t testing.TB) string {
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
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Shared returns the path of rel inside the read-only ../shared folder next
// to the repository. When it is absent the test is skipped, except under
// CI=true, where it fails.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared test material %s is missing (required when CI=true): %v", p, err)
		}
		t.Skipf("shared test material %s is absent; skipping", p)
	}
	return p
}

// SharedModel returns ../shared/models/name (see Shared).
func SharedModel(t testing.TB, name string) string {
	t.Helper()
	return Shared(t, filepath.Join("models", name))
}

// Testdata returns the path of rel inside the repository's testdata folder.
func Testdata(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "testdata", rel)
}

// GoldenModel returns the directory of a tiny golden model (config.json and
// model.safetensors): the copy in testdata/golden when present, otherwise
// ../shared/golden (see Shared).
func GoldenModel(t testing.TB, name string) string {
	t.Helper()
	p := Testdata(t, filepath.Join("golden", name))
	if _, err := os.Stat(filepath.Join(p, "model.safetensors")); err == nil {
		return p
	}
	return Shared(t, filepath.Join("golden", name))
}

// Quality skips a long quality-bar test unless VLORA_QUALITY=1 is set, or
// -short is given. .ci/run sets the variable, so the bars hold in CI.
func Quality(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("quality-bar test; skipped with -short")
	}
	if os.Getenv("VLORA_QUALITY") != "1" {
		t.Skip("quality-bar test; set VLORA_QUALITY=1 to run it")
	}
}
