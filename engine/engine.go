// Package engine runs the distillation stage on the PyTorch engine, the
// Python package vlora_torch kept in the repository's python/ folder, for
// models and token budgets that outgrow one CPU: it finds the interpreter,
// checks that PyTorch is installed before any work, writes the inputs the
// engine reads (token data and the batch order that package distill would
// draw), launches `python -m vlora_torch.distill` (or torchrun with several
// processes), relays its progress events and signals, and returns its exit
// status.
//
// The command line and the progress protocol are the contract between the
// two sides; the flags have the names and meanings of vlora-convert
// distill's.
package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
)

// Module is the engine's entry point, run as python -m Module.
const Module = "vlora_torch.distill"

// InstallHint is what a user without the engine's Python environment is
// told to run.
const InstallHint = "scripts/pyenv.sh (from the repository root: it creates .venv with the pinned torch, transformers and safetensors)"

// ErrNoEngine reports that the interpreter or the packages the engine needs
// are missing. It wraps formats.ErrInvalid: like bad input, it is found
// before any work and gives exit code 2.
var ErrNoEngine = fmt.Errorf("%w: the PyTorch engine is not installed", formats.ErrInvalid)

// Options are the engine-only settings; the zero value runs one process on
// the best device the engine finds, in float32.
type Options struct {
	// NProc is the number of processes (0 or 1: one, without torchrun).
	NProc int
	// Device is cpu, cuda or auto (default auto).
	Device string
	// DType is the compute dtype: float32 (default) or bf16 (autocast with
	// float32 master weights).
	DType string
	// FSDP shards parameters, gradients and optimizer state over the
	// processes instead of replicating them (DDP).
	FSDP bool
	// GradAccum splits each step's batch into that many micro-batches
	// (0 or 1: none).
	GradAccum int
	// ActivationCheckpointing recomputes each layer's activations in the
	// backward pass.
	ActivationCheckpointing bool
}

// MaxNProc bounds Options.NProc.
const MaxNProc = 4096

// Validate checks o against the documented ranges. Errors wrap
// formats.ErrInvalid and name the flag.
func (o Options) Validate() error {
	switch {
	case o.NProc < 0 || o.NProc > MaxNProc:
		return fmt.Errorf("%w: --nproc %d is outside 0…%d", formats.ErrInvalid, o.NProc, MaxNProc)
	case o.GradAccum < 0 || o.GradAccum > 1<<16:
		return fmt.Errorf("%w: --grad-accum %d is outside 0…65536", formats.ErrInvalid, o.GradAccum)
	}
	switch o.Device {
	case "", "auto", "cpu", "cuda":
	default:
		if !strings.HasPrefix(o.Device, "cuda:") {
			return fmt.Errorf("%w: --device %q: want cpu, cuda, cuda:N or auto", formats.ErrInvalid, o.Device)
		}
	}
	switch o.DType {
	case "", "float32", "bf16":
	default:
		return fmt.Errorf("%w: --engine-dtype %q: want float32 or bf16", formats.ErrInvalid, o.DType)
	}
	return nil
}

// args returns the engine-only flags of o.
func (o Options) args() []string {
	var a []string
	if o.Device != "" {
		a = append(a, "--device", o.Device)
	}
	if o.DType != "" {
		a = append(a, "--dtype", o.DType)
	}
	if o.FSDP {
		a = append(a, "--fsdp")
	}
	if o.GradAccum > 1 {
		a = append(a, "--grad-accum", strconv.Itoa(o.GradAccum))
	}
	if o.ActivationCheckpointing {
		a = append(a, "--activation-checkpointing")
	}
	return a
}

// Interpreter returns the Python interpreter that runs the engine:
// $VLORA_PYTHON when set, else .venv/bin/python under the first of dirs
// that has one, else python3 on the PATH. Callers pass the repository root
// (when known) and the executable's directory.
func Interpreter(dirs ...string) string {
	if p := os.Getenv("VLORA_PYTHON"); p != "" {
		return p
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, ".venv", "bin", "python")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return "python3"
}

// SourceDir returns the python/ folder holding the vlora_torch package
// under the first of dirs (or one of their parents) that has one, or "".
// When found it goes on the engine's PYTHONPATH, so that a working tree
// runs its own engine even when the environment did not install it.
func SourceDir(dirs ...string) string {
	for _, d := range dirs {
		for d != "" {
			p := filepath.Join(d, "python")
			if st, err := os.Stat(filepath.Join(p, "vlora_torch", "__init__.py")); err == nil && !st.IsDir() {
				return p
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return ""
}

// Runtime is how the engine is started: the interpreter and the source
// folder put on PYTHONPATH ("" for an installed package).
type Runtime struct {
	Python    string
	SourceDir string
}

// DefaultRuntime locates the interpreter and the source folder from the
// working directory and the executable's directory.
func DefaultRuntime() Runtime {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	src := SourceDir(dirs...)
	var roots []string
	if src != "" {
		roots = append(roots, filepath.Dir(src))
	}
	roots = append(roots, dirs...)
	return Runtime{Python: Interpreter(roots...), SourceDir: src}
}

// env returns the child's environment: the parent's, with SourceDir
// prepended to PYTHONPATH.
func (rt Runtime) env() []string {
	env := os.Environ()
	if rt.SourceDir == "" {
		return env
	}
	pp := rt.SourceDir
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	return append(env, "PYTHONPATH="+pp)
}

// checkScript imports what the engine needs and prints the torch version.
const checkScript = `import torch, transformers, safetensors, vlora_torch; print(torch.__version__)`

// Check runs the interpreter once to import torch, transformers,
// safetensors and vlora_torch, and returns the torch version. A missing
// interpreter or package gives an error wrapping ErrNoEngine that names it
// and InstallHint.
func (rt Runtime) Check(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, rt.Python, "-c", checkScript)
	cmd.Env = rt.env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		why := err.Error()
		if line := lastLine(stderr.String()); strings.Contains(line, "Error") {
			why = line
		}
		return "", fmt.Errorf("%w (%s: %s); install it with %s", ErrNoEngine, rt.Python, why, InstallHint)
	}
	return strings.TrimSpace(string(out)), nil
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Event is one line of the engine's progress protocol (--progress-json).
// Event says which: start, step, eval or done; the other fields are those
// the event carries.
type Event struct {
	Event string `json:"event"`
	// start
	Steps         int    `json:"steps"`
	StartStep     int    `json:"start_step"`
	TokensPerStep int64  `json:"tokens_per_step"`
	WorldSize     int    `json:"world_size"`
	Device        string `json:"device"`
	// step (Step is 1-based, the step just finished) and eval
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`
	KL       float64 `json:"kl"`
	Hidden   float64 `json:"hidden"`
	LR       float64 `json:"lr"`
	Tokens   int64   `json:"tokens"`
	ElapsedS float64 `json:"elapsed_s"`
	NLL      float64 `json:"nll"`
	// Agreement (eval) is the share of positions where the student's
	// most likely token is the teacher's.
	Agreement float64 `json:"agreement"`
	// done
	Out       string   `json:"out"`
	FinalLoss float64  `json:"final_loss"`
	EvalKL    *float64 `json:"eval_kl"`
	// TokensPerSec is sent by engines that measure it in their done event.
	TokensPerSec float64 `json:"tokens_per_s"`
	// Raw is the event's line as the engine wrote it, with any field the
	// protocol does not name (such as the peak accelerator memory).
	Raw json.RawMessage `json:"-"`
}

// ExitError is the engine's non-zero exit status. Its messages went to the
// error stream already.
type ExitError struct {
	Code int
	// Signal is set when the engine was killed by a signal.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "the PyTorch engine was stopped by " + e.Signal
	}
	return fmt.Sprintf("the PyTorch engine exited with status %d", e.Code)
}

// Launch describes one run of the engine.
type Launch struct {
	Runtime
	// Args are the engine's arguments after the module name: the initial
	// file, --original, --out and the flags; Run adds --progress-json and
	// the engine-only flags of Options.
	Args    []string
	Options Options
	// Stderr receives the engine's stderr and any stdout line that is not
	// an event (default os.Stderr).
	Stderr io.Writer
	// OnEvent, when set, is called with every event, in order.
	OnEvent func(Event)
	// Grace is how long Run waits after forwarding a stop before it kills
	// the engine (default 30 s).
	Grace time.Duration
}

// Command returns the program and arguments that start the engine: python
// -m vlora_torch.distill, or, with Options.NProc above 1, torchrun
// --standalone --nproc-per-node N (the torchrun beside the interpreter, else
// python -m torch.distributed.run).
func (l *Launch) Command() []string {
	args := append(append([]string{"-m", Module}, l.Args...), "--progress-json")
	args = append(args, l.Options.args()...)
	if l.Options.NProc <= 1 {
		return append([]string{l.Python}, args...)
	}
	launcher := []string{l.Python, "-m", "torch.distributed.run"}
	if tr := filepath.Join(filepath.Dir(l.Python), "torchrun"); strings.ContainsRune(l.Python, filepath.Separator) {
		if st, err := os.Stat(tr); err == nil && !st.IsDir() {
			launcher = []string{tr}
		}
	}
	return append(launcher, append([]string{"--standalone", "--nproc-per-node", strconv.Itoa(l.Options.NProc)}, args...)...)
}

// Run starts the engine and waits for it. Its stdout is read as events
// (OnEvent), its stderr passed through. SIGINT and SIGTERM received by this
// process are forwarded to the engine, and a cancelled ctx sends it SIGTERM;
// either way Run waits for the engine to stop (so that it can leave its
// checkpoint), killing it after Grace. Run returns the done event, and a
// non-zero exit status as *ExitError.
func (l *Launch) Run(ctx context.Context) (*Event, error) {
	argv := l.Command()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = l.env()
	var stderr io.Writer = os.Stderr
	if l.Stderr != nil {
		stderr = l.Stderr
	}
	// The engine's stderr is copied on another goroutine; lines of its
	// stdout join it here.
	stderr = &lockedWriter{w: stderr}
	cmd.Stderr = stderr
	// Its own process group: a Ctrl-C at the terminal reaches the engine
	// once, through Run, not twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the PyTorch engine (%s): %w", argv[0], err)
	}
	waited := make(chan struct{})
	go func() {
		grace := l.Grace
		if grace <= 0 {
			grace = 30 * time.Second
		}
		var kill <-chan time.Time
		ctxDone := ctx.Done()
		for {
			select {
			case <-waited:
				return
			case s := <-sigs:
				ctxDone = nil // the signal cancels ctx too: one stop is enough
				cmd.Process.Signal(s)
				if kill == nil {
					kill = time.After(grace)
				}
			case <-ctxDone:
				ctxDone = nil
				// A signal to this process cancels ctx as well (the
				// command's signal.NotifyContext); forward that signal
				// itself when it comes, SIGTERM otherwise.
				var s os.Signal = syscall.SIGTERM
				select {
				case s = <-sigs:
				case <-time.After(100 * time.Millisecond):
				}
				cmd.Process.Signal(s)
				if kill == nil {
					kill = time.After(grace)
				}
			case <-kill:
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				return
			}
		}
	}()
	var done *Event
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil || ev.Event == "" {
			fmt.Fprintf(stderr, "%s\n", line)
			continue
		}
		ev.Raw = append(json.RawMessage(nil), line...)
		if ev.Event == "done" {
			e := ev
			done = &e
		}
		if l.OnEvent != nil {
			l.OnEvent(ev)
		}
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	close(waited)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return done, &ExitError{Code: 1, Signal: ws.Signal().String()}
			}
			return done, &ExitError{Code: ee.ExitCode()}
		}
		return done, fmt.Errorf("the PyTorch engine: %w", err)
	}
	if done == nil {
		return nil, errors.New("the PyTorch engine exited without its done event")
	}
	return done, nil
}

// WriteBatchOrder writes the batch order of a run to path (atomically): the
// I32 tensor "indices" [steps, batch] whose row s holds the items
// distill.BatchIndices draws at step s for seed, batch and a training set
// of n items. The engine, given it with --batch-order, trains on exactly
// the batches distill.Run would.
func WriteBatchOrder(path string, seed uint64, steps, batch, n int) error {
	if steps < 0 || batch < 1 || n < 1 || n > 1<<31-1 {
		return fmt.Errorf("%w: batch order of %d steps × %d from %d items", formats.ErrInvalid, steps, batch, n)
	}
	w, err := formats.Create(path, nil, []formats.TensorSpec{{Name: "indices", DType: formats.I32, Shape: []int{steps, batch}}})
	if err != nil {
		return err
	}
	idx := make([]int32, 0, steps*batch)
	for s := 0; s < steps; s++ {
		for _, i := range distill.BatchIndices(seed, s, batch, n) {
			idx = append(idx, int32(i))
		}
	}
	if err := w.WriteInt32("indices", idx); err != nil {
		return err
	}
	return w.Commit()
}

// Metadata keys of a token file written by WriteTokens: where the tokens
// came from (the data file the user named) and that file's SHA-256. The
// engine records them in the distillation record instead of the token
// file's own path and digest, as distill.Run records dataset.Dataset's
// Source and SHA256.
const (
	MetaSource = "vlora.source"
	MetaSHA256 = "vlora.sha256"
)

// WriteTokens writes the token sequences of ds to path (atomically) as the
// engine reads them: the I32 tensor "tokens" [N, T], with
// "token_type_ids" when ds has token types, and ds's Source and SHA256
// under MetaSource and MetaSHA256. Images give an error wrapping
// formats.ErrInvalid.
func WriteTokens(path string, ds *dataset.Dataset) error {
	if ds.IsImages() {
		return fmt.Errorf("%w: %s: the PyTorch engine trains on token data, not images", formats.ErrInvalid, ds.Source)
	}
	specs := []formats.TensorSpec{{Name: "tokens", DType: formats.I32, Shape: []int{ds.N, ds.T}}}
	if ds.TokenTypes != nil {
		specs = append(specs, formats.TensorSpec{Name: "token_type_ids", DType: formats.I32, Shape: []int{ds.N, ds.T}})
	}
	w, err := formats.Create(path, map[string]string{MetaSource: ds.Source, MetaSHA256: ds.SHA256}, specs)
	if err != nil {
		return err
	}
	if err := w.WriteInt32("tokens", toInt32(ds.IDs)); err != nil {
		return err
	}
	if ds.TokenTypes != nil {
		if err := w.WriteInt32("token_type_ids", toInt32(ds.TokenTypes)); err != nil {
			return err
		}
	}
	return w.Commit()
}

func toInt32(x []int) []int32 {
	y := make([]int32, len(x))
	for i, v := range x {
		y[i] = int32(v)
	}
	return y
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
