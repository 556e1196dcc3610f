package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opt  Options
		flag string // "" when valid
	}{
		{Options{}, ""},
		{Options{NProc: 8, Device: "cuda", DType: "bf16", FSDP: true, GradAccum: 4, ActivationCheckpointing: true}, ""},
		{Options{Device: "cuda:3"}, ""},
		{Options{NProc: -1}, "--nproc"},
		{Options{NProc: MaxNProc + 1}, "--nproc"},
		{Options{GradAccum: -2}, "--grad-accum"},
		{Options{Device: "tpu"}, "--device"},
		{Options{DType: "f16"}, "--engine-dtype"},
	} {
		err := tc.opt.Validate()
		if tc.flag == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.opt, err)
			}
			continue
		}
		if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: got %v, want an ErrInvalid naming %s", tc.opt, err, tc.flag)
		}
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "python")
	l := &Launch{Runtime: Runtime{Python: py}, Args: []string{"in.safetensors", "--original", "m"},
		Options: Options{DType: "bf16", GradAccum: 2}}
	want := []string{py, "-m", Module, "in.safetensors", "--original", "m", "--progress-json", "--dtype", "bf16", "--grad-accum", "2"}
	if got := l.Command(); !slices.Equal(got, want) {
		t.Errorf("one process:\n got %q\nwant %q", got, want)
	}
	// Several processes: python -m torch.distributed.run without a torchrun
	// beside the interpreter, the torchrun with one.
	l.Options = Options{NProc: 2, FSDP: true}
	want = []string{py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", Module, "in.safetensors", "--original", "m", "--progress-json", "--fsdp"}
	if got := l.Command(); !slices.Equal(got, want) {
		t.Errorf("two processes:\n got %q\nwant %q", got, want)
	}
	tr := filepath.Join(dir, "torchrun")
	if err := os.WriteFile(tr, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	want = append([]string{tr}, want[3:]...)
	if got := l.Command(); !slices.Equal(got, want) {
		t.Errorf("torchrun:\n got %q\nwant %q", got, want)
	}
}

func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLORA_PYTHON", "")
	if got := Interpreter(dir); got != "python3" {
		t.Errorf("no venv: got %q, want python3", got)
	}
	py := filepath.Join(dir, ".venv", "bin", "python")
	os.MkdirAll(filepath.Dir(py), 0o755)
	os.WriteFile(py, nil, 0o755)
	if got := Interpreter("", dir); got != py {
		t.Errorf("venv: got %q, want %q", got, py)
	}
	t.Setenv("VLORA_PYTHON", "/opt/py")
	if got := Interpreter(dir); got != "/opt/py" {
		t.Errorf("VLORA_PYTHON: got %q", got)
	}
}

func TestWriteBatchOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "order.safetensors")
	const seed, steps, batch, n = 7, 5, 3, 11
	if err := WriteBatchOrder(path, seed, steps, batch, n); err != nil {
		t.Fatal(err)
	}
	f, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info("indices")
	if !ok || info.DType != formats.I32 || !slices.Equal(info.Shape, []int{steps, batch}) {
		t.Fatalf("indices: %+v", info)
	}
	got, err := f.ReadInts("indices")
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < steps; s++ {
		if want := distill.BatchIndices(seed, s, batch, n); !slices.Equal(got[s*batch:(s+1)*batch], want) {
			t.Errorf("step %d: %v, want %v", s, got[s*batch:(s+1)*batch], want)
		}
	}
	if err := WriteBatchOrder(path, seed, steps, 0, n); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("batch 0: %v", err)
	}
}

func TestWriteTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.safetensors")
	ds := &dataset.Dataset{N: 2, T: 3, IDs: []int{1, 2, 3, 4, 5, 6}, Source: "x.txt"}
	if err := WriteTokens(path, ds); err != nil {
		t.Fatal(err)
	}
	back, err := dataset.Load(context.Background(), path, dataset.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.N != 2 || back.T != 3 || !slices.Equal(back.IDs, ds.IDs) {
		t.Errorf("read back %d×%d %v", back.N, back.T, back.IDs)
	}
	img := &dataset.Dataset{N: 1, Pixels: []float32{0}, C: 1, H: 1, W: 1}
	if err := WriteTokens(path, img); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("images: %v", err)
	}
}

// fakeEngine writes a shell script standing in for the interpreter.
func fakeEngine(t *testing.T, body string) Runtime {
	t.Helper()
	py := filepath.Join(t.TempDir(), "python")
	if err := os.WriteFile(py, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return Runtime{Python: py}
}

func TestRunEvents(t *testing.T) {
	rt := fakeEngine(t, `echo '{"event":"start","steps":2,"start_step":0,"tokens_per_step":16,"world_size":1,"device":"cpu"}'
echo 'a log line on stdout'
echo '{"event":"step","step":1,"steps":2,"loss":0.5,"kl":0.4,"hidden":0.1,"lr":0.001,"tokens":16,"elapsed_s":0.5}'
echo '{"event":"step","step":2,"steps":2,"loss":0.25,"kl":0.2,"hidden":0.05,"lr":0.0005,"tokens":32,"elapsed_s":1}'
echo 'warming up' >&2
echo '{"event":"done","out":"o.safetensors","steps":2,"final_loss":0.375,"eval_kl":null}'
`)
	var events []Event
	var stderr bytes.Buffer
	l := &Launch{Runtime: rt, Stderr: &stderr, OnEvent: func(e Event) { events = append(events, e) }}
	done, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[0].Event != "start" || events[2].Loss != 0.25 || events[2].Tokens != 32 {
		t.Errorf("events %+v", events)
	}
	if done.Out != "o.safetensors" || done.FinalLoss != 0.375 || done.EvalKL != nil || !strings.Contains(string(done.Raw), `"final_loss":0.375`) {
		t.Errorf("done %+v", done)
	}
	for _, want := range []string{"a log line on stdout", "warming up"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	}
}

func TestRunExitCode(t *testing.T) {
	for _, code := range []int{1, 2} {
		rt := fakeEngine(t, "echo 'vlora_torch: --data: bad' >&2\nexit "+string(rune('0'+code))+"\n")
		l := &Launch{Runtime: rt, Stderr: &bytes.Buffer{}}
		_, err := l.Run(context.Background())
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != code {
			t.Errorf("exit %d: got %v", code, err)
		}
	}
	// Exiting 0 without a done event is a failure.
	l := &Launch{Runtime: fakeEngine(t, "exit 0\n"), Stderr: &bytes.Buffer{}}
	if _, err := l.Run(context.Background()); err == nil {
		t.Error("no done event: no error")
	}
}

// TestRunForwardsStop checks that a cancelled context reaches the engine as
// SIGTERM, that Run waits for it to finish its clean-up, and that its exit
// status comes back.
func TestRunForwardsStop(t *testing.T) {
	rt := fakeEngine(t, `trap 'echo "stopping" >&2; exit 3' TERM
echo '{"event":"start","steps":9,"start_step":0,"tokens_per_step":1,"world_size":1,"device":"cpu"}'
while :; do sleep 0.05; done
`)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	l := &Launch{Runtime: rt, Stderr: &stderr, OnEvent: func(e Event) {
		if e.Event == "start" {
			cancel()
		}
	}}
	t0 := time.Now()
	_, err := l.Run(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("got %v, want exit status 3", err)
	}
	if !strings.Contains(stderr.String(), "stopping") {
		t.Errorf("the engine's trap did not run: %q", stderr.String())
	}
	if time.Since(t0) > 10*time.Second {
		t.Errorf("took %v", time.Since(t0))
	}
}

// TestRunKillsAfterGrace checks that an engine ignoring the stop is killed
// after the grace period.
func TestRunKillsAfterGrace(t *testing.T) {
	rt := fakeEngine(t, `trap '' TERM INT
echo '{"event":"start","steps":9,"start_step":0,"tokens_per_step":1,"world_size":1,"device":"cpu"}'
while :; do sleep 0.05; done
`)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Launch{Runtime: rt, Stderr: &bytes.Buffer{}, Grace: 200 * time.Millisecond, OnEvent: func(Event) { cancel() }}
	_, err := l.Run(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL.String() {
		t.Fatalf("got %v, want killed", err)
	}
}

// TestRunForwardsSignal checks that a SIGINT to this process reaches the
// engine as SIGINT (once), and that its exit status comes back.
func TestRunForwardsSignal(t *testing.T) {
	rt := fakeEngine(t, `trap 'echo "got INT" >&2; exit 4' INT
trap 'echo "got TERM" >&2; exit 5' TERM
echo '{"event":"start","steps":9,"start_step":0,"tokens_per_step":1,"world_size":1,"device":"cpu"}'
while :; do sleep 0.05; done
`)
	var stderr bytes.Buffer
	l := &Launch{Runtime: rt, Stderr: &stderr, OnEvent: func(e Event) {
		if e.Event == "start" {
			syscall.Kill(os.Getpid(), syscall.SIGINT)
		}
	}}
	_, err := l.Run(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 4 {
		t.Fatalf("got %v (stderr %q), want exit status 4", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "TERM") {
		t.Errorf("the engine got SIGTERM too: %q", stderr.String())
	}
}
