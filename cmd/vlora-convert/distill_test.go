package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestCompressWithDistillation runs compress with a short distillation on
// the tiny Llama fixture and checks the JSON summary, the manifest record,
// the loss log and plot, and that distill continues the file.
func TestCompressWithDistillation(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "-r", "4",
		"--distill-steps", "12", "--batch", "4", "--seq-len", "16", "--checkpoint-every", "5", "--json", "-q")
	if code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	for _, k := range []string{"steps", "tokens", "final_loss", "eval_kl", "tokens_per_second", "compress"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
	if sum["steps"].(float64) != 12 || sum["tokens"].(float64) != 12*4*16 {
		t.Errorf("steps %v tokens %v", sum["steps"], sum["tokens"])
	}
	m, f, err := vlora.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := m.Distill
	if d == nil || d.Steps != 12 || d.Tokens != 768 || d.FinalLoss <= 0 || d.EvalKL <= 0 || d.Data == "" {
		t.Fatalf("manifest distill record %+v", d)
	}
	for _, name := range []string{"model.vlora.loss.csv", "model.vlora.loss.png", "config.json"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", name, err)
		}
	}
	for _, name := range []string{"distill.ckpt.safetensors", "distill.ckpt.safetensors.optim"} {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("checkpoint %s left behind after success", name)
		}
	}
	// Continue training: the record accumulates.
	if _, stderr, code := run(t, "distill", out, "--original", dir, "--steps", "3", "--batch", "2", "--seq-len", "16", "-q"); code != 0 {
		t.Fatalf("distill: exit %d: %s", code, stderr)
	}
	m, f, err = vlora.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m.Distill.Steps != 15 {
		t.Errorf("after distill, steps recorded %d, want 15", m.Distill.Steps)
	}
	// Bad trainable set is a usage error.
	if _, _, code := run(t, "distill", out, "--original", dir, "--train", "everything"); code != 2 {
		t.Errorf("--train everything: exit %d, want 2", code)
	}
}
