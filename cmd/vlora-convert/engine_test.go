package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// The PyTorch engine's tests. They need the environment scripts/pyenv.sh
// builds; enginePython locates it as the command does.

// enginePython returns the interpreter of the engine's environment:
// $VLORA_PYTHON, else .venv/bin/python at the repository root. When there
// is none the test is skipped, except under CI=true, where it fails (the
// test command builds it).
func enginePython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("VLORA_PYTHON")
	if py == "" {
		py = filepath.Join(testenv.RepoRoot(t), ".venv", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the engine's Python environment %s is missing (required when CI=true; scripts/test.sh builds it with scripts/pyenv.sh): %v", py, err)
		}
		t.Skipf("the engine's Python environment %s is absent (build it with scripts/pyenv.sh); skipping", py)
	}
	return py
}

// TestEngineMissing checks that --engine torch without the engine's
// environment stops before any work: exit code 2, one line naming the
// install script, and nothing written.
func TestEngineMissing(t *testing.T) {
	model := testenv.GoldenModel(t, "llama-gqa-untied")
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if _, stderr, code := run(t, "compress", "--model", model, "--out", init, "-k", "2", "-r", "4", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: %d %s", code, stderr)
	}
	t.Setenv("VLORA_PYTHON", filepath.Join(dir, "no-such-python"))
	out := filepath.Join(dir, "out")
	_, stderr, code := run(t, "distill", init, "--original", model, "--out", out, "--steps", "2", "--engine", "torch", "-q")
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, "scripts/pyenv.sh") {
		t.Errorf("want one line naming scripts/pyenv.sh, got %q", stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was created", out)
	}
	// compress hands its distillation stage to the engine: the same stop,
	// before the SVD stage writes anything.
	_, stderr, code = run(t, "compress", "--model", model, "--out", out, "-k", "2", "-r", "4", "--distill-steps", "2", "--engine", "torch", "-q")
	if code != 2 || !strings.Contains(stderr, "scripts/pyenv.sh") {
		t.Errorf("compress: exit %d, stderr %q; want 2 naming scripts/pyenv.sh", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("compress created %s", out)
	}
}

// TestEngineFlagErrors checks the engine flags' validation, which runs
// before the engine is looked for.
func TestEngineFlagErrors(t *testing.T) {
	model := testenv.GoldenModel(t, "llama-gqa-untied")
	file := filepath.Join(t.TempDir(), "m.vlora.safetensors")
	os.WriteFile(file, []byte("not read"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nproc", "2"}, "--nproc needs --engine torch"},
		{[]string{"--fsdp"}, "--fsdp needs --engine torch"},
		{[]string{"--engine", "jax"}, `--engine "jax"`},
		{[]string{"--engine", "torch", "--nproc", "0"}, "--nproc 0"},
		{[]string{"--engine", "torch", "--grad-accum", "0"}, "--grad-accum 0"},
		{[]string{"--engine", "torch", "--device", "tpu"}, "--device"},
		{[]string{"--engine", "torch", "--engine-dtype", "fp16"}, "--engine-dtype"},
		{[]string{"--engine", "torch", "--local-steps", "3"}, "--local-steps"},
		{[]string{"--engine", "torch", "--scaled-gd"}, "--scaled-gd"},
		{[]string{"--engine", "torch", "--dtype", "int4"}, "--dtype"},
		{[]string{"--engine", "torch", "--batch", "0"}, "--batch"},
	} {
		args := append([]string{"distill", file, "--original", model, "-q"}, tc.args...)
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nproc", "2"}, "--nproc needs --engine torch"},
		{[]string{"--engine", "torch", "--dtype", "int4"}, "--dtype"},
		{[]string{"--engine", "torch", "--local-steps", "3"}, "--local-steps"},
	} {
		args := append([]string{"compress", "--model", model, "--out", out, "-q"}, tc.args...)
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("compress %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// engineFixture is a bytellama VLoRA file with the SVD initialisation
// only, and the data the engine tests train and evaluate on.
type engineFixture struct {
	original, init, calib, eval, dir string
}

func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	fx := &engineFixture{original: testenv.SharedModel(t, "bytellama"),
		calib: testenv.Shared(t, "data/stdlib-bytes/calib.safetensors"),
		eval:  testenv.Shared(t, "data/stdlib-bytes/eval.safetensors"), dir: t.TempDir()}
	fx.init = filepath.Join(fx.dir, "init")
	if _, stderr, code := run(t, "compress", "--model", fx.original, "--out", fx.init, "-k", "4", "-r", "16", "--base", "mean", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: %d %s", code, stderr)
	}
	return fx
}

// distillArgs is the 20-step recipe of the parity tests: float32, fixed
// batches, sequences of 64 bytes.
func (fx *engineFixture) distillArgs(out string, extra ...string) []string {
	return append([]string{"distill", fx.init, "--original", fx.original, "--out", out,
		"--data", fx.calib, "--eval-data", fx.eval, "--eval-samples", "16", "--seq-len", "64",
		"--steps", "20", "--batch", "8", "--seed", "3", "-q"}, extra...)
}

// torchArgs adds the engine's flags for a float32 run on the CPU.
func torchArgs(extra ...string) []string {
	return append([]string{"--engine", "torch", "--device", "cpu", "--engine-dtype", "float32"}, extra...)
}

// timed runs the command line and logs its wall time.
func timed(t *testing.T, what string, args ...string) (string, string, int) {
	t.Helper()
	t0 := time.Now()
	out, stderr, code := run(t, args...)
	t.Logf("%s: %.1f s", what, time.Since(t0).Seconds())
	return out, stderr, code
}

// lossLog reads the per-step losses of a loss CSV (global steps).
func lossLog(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range rows[0] {
		if h == "loss" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("%s: no loss column in %v", path, rows[0])
	}
	var loss []float64
	for _, r := range rows[1:] {
		if len(r) > 0 && r[0] == "local" {
			continue
		}
		v, err := strconv.ParseFloat(r[col], 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		loss = append(loss, v)
	}
	return loss
}

// verifyKL runs verify on the evaluation data and returns the mean KL.
func verifyKL(t *testing.T, fx *engineFixture, compressed string) float64 {
	t.Helper()
	out, stderr, code := timed(t, "verify "+filepath.Base(compressed), "verify", "--original", fx.original, "--compressed", compressed,
		"--data", fx.eval, "--samples", "32", "--baseline", "none", "--json", "-q")
	if code != 0 {
		t.Fatalf("verify %s: exit %d: %s", compressed, code, stderr)
	}
	var rep struct {
		KLMean *float64 `json:"kl_mean"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.KLMean == nil {
		t.Fatalf("verify %s: %v in %s", compressed, err, out)
	}
	return *rep.KLMean
}

// TestEngineTorch holds the engine's checks against the Go engine on
// bytellama, on the CPU. One 20-step float32 run of the engine (one
// process, checkpoints every 4 steps) is the reference of every subtest:
//   - parity: from the same initial file and the same batches, the Go
//     engine's loss at every step within 1% (the two sum in different orders,
//     and the difference compounds through 20 Adam steps) and the final KL
//     from verify within 2%; verify and inspect read the file, and the
//     manifest records the run (the end-to-end check of distill --engine
//     torch);
//   - ddp, fsdp: two processes (gloo, the global batch split between them)
//     give the one process's tensors within 1e-4 relative (the all-reduce
//     sums the two halves in another order);
//   - resume: a run stopped after its first checkpoint and resumed writes
//     the same bytes.
func TestEngineTorch(t *testing.T) {
	testenv.Quality(t)
	enginePython(t)
	// One thread per process: on a loaded machine two OpenMP threads in one
	// process spin against each other (a 20-step run took 474 s with two
	// and 36 s with one here). Both runs of the resume check see the same
	// setting, so their results stay comparable byte for byte.
	t.Setenv("OMP_NUM_THREADS", "1")
	fx := newEngineFixture(t)
	ref := filepath.Join(fx.dir, "torch")
	refArgs := fx.distillArgs(ref, torchArgs("--checkpoint-every", "4")...)
	if _, stderr, code := timed(t, "torch distill, 1 process", refArgs...); code != 0 {
		t.Fatalf("torch distill: %d %s", code, stderr)
	}
	refFile := filepath.Join(ref, vlora.FileName)
	t.Run("parity", func(t *testing.T) { engineParity(t, fx, ref) })
	for _, mode := range []struct {
		name  string
		extra []string
	}{{"ddp", nil}, {"fsdp", []string{"--fsdp"}}} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(fx.dir, mode.name)
			args := fx.distillArgs(out, torchArgs(append([]string{"--nproc", "2"}, mode.extra...)...)...)
			if _, stderr, code := timed(t, "2 processes "+mode.name, args...); code != 0 {
				t.Fatalf("2 processes: %d %s", code, stderr)
			}
			rel := compareModels(t, filepath.Join(out, vlora.FileName), refFile)
			t.Logf("%s: largest relative tensor difference to one process %.3g", mode.name, rel)
			if rel > 1e-4 {
				t.Errorf("%s: two processes differ from one by %.3g relative, want ≤ 1e-4", mode.name, rel)
			}
		})
	}
	t.Run("resume", func(t *testing.T) { engineResume(t, fx, refFile) })
}

// engineParity compares the Go engine's run with the engine's run in ref.
func engineParity(t *testing.T, fx *engineFixture, ref string) {
	goOut := filepath.Join(fx.dir, "go")
	if _, stderr, code := timed(t, "go distill", fx.distillArgs(goOut)...); code != 0 {
		t.Fatalf("go distill: %d %s", code, stderr)
	}
	csvName := strings.TrimSuffix(vlora.FileName, ".safetensors") + ".loss.csv"
	gl, tl := lossLog(t, filepath.Join(goOut, csvName)), lossLog(t, filepath.Join(ref, csvName))
	if len(gl) != 20 || len(tl) != 20 {
		t.Fatalf("steps: go %d, torch %d, want 20", len(gl), len(tl))
	}
	worst := 0.0
	for i := range gl {
		rel := math.Abs(tl[i]-gl[i]) / math.Abs(gl[i])
		worst = max(worst, rel)
		if rel > 0.01 {
			t.Errorf("step %d: loss go %.6g, torch %.6g (%.2g relative, want ≤ 1%%)", i+1, gl[i], tl[i], rel)
		}
	}
	t.Logf("loss: first go %.6g torch %.6g, last go %.6g torch %.6g, worst relative difference %.3g", gl[0], tl[0], gl[19], tl[19], worst)
	gk, tk := verifyKL(t, fx, goOut), verifyKL(t, fx, ref)
	t.Logf("verify KL: go %.6g, torch %.6g (%.3g relative)", gk, tk, math.Abs(tk-gk)/gk)
	if math.Abs(tk-gk) > 0.02*gk {
		t.Errorf("final KL go %.5g, torch %.5g: want within 2%%", gk, tk)
	}
	if _, stderr, code := run(t, "inspect", ref, "--json"); code != 0 {
		t.Errorf("inspect: exit %d: %s", code, stderr)
	}
	m, err := vlora.Load(filepath.Join(ref, vlora.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Manifest.Distill; d == nil || d.Steps != 20 || d.Batch != 8 || d.SeqLen != 64 || d.Seed != 3 || d.Engine != "torch" {
		t.Errorf("distillation record %+v", d)
	}
}

// engineResume stops a run as soon as its first checkpoint is on disk,
// resumes it, and compares the file with ref, the uninterrupted run's.
func engineResume(t *testing.T, fx *engineFixture, ref string) {
	cut := filepath.Join(fx.dir, "cut")
	args := fx.distillArgs(cut, torchArgs("--checkpoint-every", "4")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			// The engine writes OUT.ckpt.tmp and renames it: the name
			// appears complete. The run writes into the staging
			// directory of the owned output directory.
			if _, err := os.Stat(filepath.Join(cut, outdir.StagingName, vlora.FileName+".ckpt")); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	stderr, code := runCtx(t, ctx, args...)
	t.Logf("stopped run: %.1f s", time.Since(t0).Seconds())
	if code == 0 {
		t.Fatal("the run finished before it was stopped; nothing to resume")
	}
	if !strings.Contains(stderr, "--resume") {
		t.Errorf("the stopped run does not say how to continue: %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(cut, vlora.FileName)); err == nil {
		t.Fatal("the stopped run left an output file")
	}
	if _, stderr, code := timed(t, "resumed", append(args, "--resume")...); code != 0 {
		t.Fatalf("resume: %d %s", code, stderr)
	}
	a, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cut, vlora.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("the resumed file differs from the uninterrupted one (largest relative tensor difference %.3g)",
			compareModels(t, filepath.Join(cut, vlora.FileName), ref))
	}
}

// compareModels returns the largest relative difference ‖a−b‖/‖b‖ over the
// tensors of two VLoRA files of the same layout.
func compareModels(t *testing.T, a, b string) float64 {
	t.Helper()
	ma, err := vlora.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := vlora.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	n := 0
	for name, tb := range mb.Tensors {
		ta, ok := ma.Tensors[name]
		if !ok || len(ta.Data) != len(tb.Data) {
			t.Fatalf("%s: tensor %s missing or of another size in %s", b, name, a)
		}
		var d, s float64
		for i, v := range tb.Data {
			e := float64(ta.Data[i]) - float64(v)
			d += e * e
			s += float64(v) * float64(v)
		}
		if s > 0 {
			worst = max(worst, math.Sqrt(d/s))
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s holds no tensors", b)
	}
	return worst
}

// TestCompressEngineTorch checks that compress hands its distillation
// stage to the engine: the SVD stage's file, distilled in place, with the
// engine's record, read by inspect and verify.
func TestCompressEngineTorch(t *testing.T) {
	testenv.Quality(t)
	enginePython(t)
	t.Setenv("OMP_NUM_THREADS", "1") // see TestEngineTorch
	model := testenv.GoldenModel(t, "llama-gqa-untied")
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code := timed(t, "compress --engine torch", "compress", "--model", model, "--out", out, "-k", "2", "-r", "4",
		"--distill-steps", "3", "--batch", "4", "--seq-len", "16", "--engine", "torch", "--device", "cpu", "--json", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum struct {
		Steps    int             `json:"steps"`
		Engine   json.RawMessage `json:"engine"`
		Compress *struct {
			ParamsStored int64 `json:"params_stored"`
		} `json:"compress"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Steps != 3 || sum.Engine == nil || sum.Compress == nil {
		t.Fatalf("summary %v: %s", err, stdout)
	}
	m, err := vlora.Load(filepath.Join(out, vlora.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Manifest.Distill; d == nil || d.Steps != 3 || d.Batch != 4 || d.SeqLen != 16 || d.Engine != "torch" {
		t.Errorf("distillation record %+v", d)
	}
	for _, args := range [][]string{{"inspect", out}, {"verify", "--original", model, "--compressed", out, "--samples", "4", "--seq-len", "16", "-q"}} {
		if _, stderr, code := run(t, args...); code != 0 {
			t.Errorf("%s: exit %d: %s", args[0], code, stderr)
		}
	}
	if ckpts, _ := filepath.Glob(filepath.Join(out, "*.ckpt*")); len(ckpts) > 0 {
		t.Errorf("checkpoints left behind: %v", ckpts)
	}
}
