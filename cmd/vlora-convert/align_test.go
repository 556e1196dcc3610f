package main

import (
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// TestCompressAlign checks compress --align with the whitened, refitted
// budget plan on the Llama fixture (inspect shows the alignment) and the
// clear error, exit code 2, on GPT-2.
func TestCompressAlign(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "4", "--target-params", "0.8",
		"--init", "whitened", "--refit", "--calib-samples", "4", "--seq-len", "16", "--distill-steps", "0", "-q", "--align"); code != 0 {
		t.Fatalf("compress --align failed: %s", stderr)
	}
	stdout, stderr, code := run(t, "inspect", out)
	if code != 0 {
		t.Fatalf("inspect failed: %s", stderr)
	}
	if !strings.Contains(stdout, "exact symmetry alignment to the compound mean") {
		t.Errorf("inspect does not show the alignment:\n%s", stdout)
	}
	_, stderr, code = run(t, "compress", "--model", testenv.GoldenModel(t, "gpt2"), "--out", t.TempDir(), "-r", "4", "--distill-steps", "0", "-q", "--align")
	if code != 2 || !strings.Contains(stderr, "symmetry alignment is not supported") {
		t.Errorf("gpt2 --align: exit %d, %s", code, stderr)
	}
}
