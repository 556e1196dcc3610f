package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestCompressWithRecipe runs the budget (with the sensitivity pass),
// whitened initialisation, refit, local stage and a token budget on the tiny Llama fixture (calibration
// and training data sampled from the original) and checks the stored
// fraction, the manifest record and the stage column of the loss log.
func TestCompressWithRecipe(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "--target-params", "0.6",
		"--init", "whitened", "--refit", "--plan-sensitivity", "--calib-samples", "64", "--local-steps", "3", "--tokens", "600",
		"--batch", "4", "--seq-len", "16", "-q")
	if code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	m, f, err := vlora.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if frac := float64(m.Counts.ParamsStored) / float64(m.Counts.ParamsOriginal); frac > 0.6 {
		t.Errorf("stored fraction %.4f, want at most 0.6", frac)
	}
	// 600 tokens in steps of 4×16: 10 steps.
	if d := m.Distill; d == nil || d.Steps != 10 || d.LocalSteps != 3 {
		t.Fatalf("manifest distill record %+v", d)
	}
	csv, err := os.ReadFile(filepath.Join(out, "model.vlora.loss.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	local, global := 0, 0
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "local,"):
			local++
		case strings.HasPrefix(l, "global,"):
			global++
		}
	}
	if comps := len(m.Compounds); local != 3*comps || global != 10 {
		t.Errorf("loss log: %d local and %d global rows, want %d and 10", local, global, 3*comps)
	}
	// 64 sampled sequences of 16: the 1,024 positions the sensitivity
	// pass needs.
	if !strings.Contains(stderr, "refit:") || !strings.Contains(stderr, "tensors measured") {
		t.Errorf("no refit or sensitivity report on stderr: %q", stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".vlora-plan-*")); len(left) > 0 {
		t.Errorf("the sensitivity pass left %v behind", left)
	}
	stdout, _, code := run(t, "distill", out, "--original", dir, "--local-steps", "2", "--steps", "1", "--batch", "2", "--seq-len", "16", "--json")
	var sum map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &sum) != nil {
		t.Fatalf("distill --local-steps: exit %d: %s", code, stdout)
	}
	if sum["local_steps"] != float64(2*len(m.Compounds)) {
		t.Errorf("summary local_steps %v, want %d", sum["local_steps"], 2*len(m.Compounds))
	}
}

// TestCompressDefaultRecipe checks that compress without recipe flags
// spends the default parameter budget with whitened initialisation and
// refit on calibration sequences sampled from the original, and trains
// every tensor; an explicit rank keeps the single-rank recipe.
func TestCompressDefaultRecipe(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	root := t.TempDir()
	data := filepath.Join(root, "data.safetensors")
	writeInts(t, data, "tokens", []int{4, 16}, func(i int) int32 { return int32(i % 96) })
	out := filepath.Join(root, "out")
	_, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "--calib-samples", "4",
		"--distill-steps", "2", "--batch", "2", "--data", data)
	if code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	m, f, err := vlora.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if frac := float64(m.Counts.ParamsStored) / float64(m.Counts.ParamsOriginal); frac > defaultTargetParams {
		t.Errorf("stored fraction %.4f, want at most %v", frac, defaultTargetParams)
	}
	if m.Distill == nil || m.Distill.Train != "all" || m.Distill.LocalSteps != 0 ||
		!strings.Contains(m.Distill.Data, fmt.Sprintf("%d continuations", defaultAugment)) || !strings.Contains(m.Distill.Data, "first 2 tokens") {
		t.Errorf("distill record %+v, want every tensor trained on the data and %d continuations of 2-token prefixes", m.Distill, defaultAugment)
	}
	// 4 × 16 positions are too few to measure sensitivity: the plan says
	// so and allocates by truncation loss.
	for _, want := range []string{"budget:", "sensitivity: skipped", "refit:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
	ranked := filepath.Join(t.TempDir(), "ranked")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", ranked, "-k", "2", "-r", "3", "--distill-steps", "0"); code != 0 || strings.Contains(stderr, "budget:") {
		t.Fatalf("compress -r 3: exit %d: %s", code, stderr)
	}
	m, f, err = vlora.ReadManifest(ranked)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m.SVD.Rank != 3 || m.BaseMode != vlora.BaseFirst {
		t.Errorf("-r 3: rank %d base %s, want 3 and first", m.SVD.Rank, m.BaseMode)
	}
}

// TestDistillAugment distills on a data file plus continuations of its
// sequences by the original, and checks that the training set and the
// manifest name them and that each step still trains on the batch asked for.
func TestDistillAugment(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	root := t.TempDir()
	data := filepath.Join(root, "data.safetensors")
	writeInts(t, data, "tokens", []int{4, 16}, func(i int) int32 { return int32(i % 96) })
	out := filepath.Join(root, "out")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "-r", "4", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "distill", out, "--original", dir, "--data", data, "--augment", "6", "--augment-prefix", "4",
		"--steps", "3", "--batch", "2", "--json", "-q")
	if code != 0 {
		t.Fatalf("distill --augment: exit %d: %s", code, stderr)
	}
	var sum struct {
		Tokens    int64  `json:"tokens"`
		TrainData string `json:"train_data"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Tokens != 3*2*16 || !strings.Contains(sum.TrainData, "6 continuations") || !strings.Contains(sum.TrainData, "first 4 tokens") {
		t.Errorf("summary tokens %d, train data %q", sum.Tokens, sum.TrainData)
	}
	m, f, err := vlora.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !strings.Contains(m.Distill.Data, "continuations") {
		t.Errorf("manifest records the data as %q", m.Distill.Data)
	}
}

// TestPlanSensitivityIsDeterministic compresses twice with the sensitivity
// pass and requires byte-identical files: the measurement and the weights
// it gives must not depend on map order or timing.
func TestPlanSensitivityIsDeterministic(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	var files [][]byte
	for i := range 2 {
		out := filepath.Join(t.TempDir(), fmt.Sprint("out", i))
		_, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "--target-params", "0.6",
			"--init", "whitened", "--refit", "--plan-sensitivity", "--calib-samples", "64", "--seq-len", "16",
			"--distill-steps", "0", "-q")
		if code != 0 || !strings.Contains(stderr, "tensors measured") {
			t.Fatalf("compress: exit %d: %s", code, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, vlora.FileName))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two runs wrote different files")
	}
}
