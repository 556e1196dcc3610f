// Command vlora-convert compresses Hugging Face transformer checkpoints into
// Vertical-LoRA (VLoRA) form, runs and verifies them.
//
// Exit codes: 0 success, 1 failure (including missed verification
// thresholds), 2 invalid usage or input.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/model"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors caused by the command line or the input files.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCode maps an error onto the documented exit codes.
func exitCode(err error) int {
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), errors.Is(err, formats.ErrInvalid), errors.Is(err, fs.ErrNotExist),
		errors.Is(err, model.ErrUnsupportedArchitecture), errors.Is(err, distill.ErrUnsupported):
		return exitUsage
	}
	return exitFailure
}

// exitError carries an explicit exit code whose message has already been
// printed (or needs none beyond msg).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// streams are the streams of the commands: input text comes from In,
// results go to Out, messages and progress bars to ErrOut. Commands never
// use os.Stdin, os.Stdout or os.Stderr directly.
type streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// command is what every subcommand's options implement, in the kubectl
// style: Complete fills in derived values from flags and arguments,
// Validate rejects bad usage (usage errors, exit code 2), Run does the work
// and writes to the injected streams.
type command interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE adapts a command to cobra.
func runE(o command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		stop, err := startProfile(cmd)
		if err != nil {
			return err
		}
		err = o.Run(cmd.Context())
		return errors.Join(err, stop())
	}
}

// gzipMagic starts a CPU profile (gzip-compressed protocol buffers).
var gzipMagic = []byte{0x1f, 0x8b}

// checkProfile validates the --cpuprofile path before anything is read
// or written: a file in an existing, writable directory that is new or a
// previous profile, so that no input can be named and truncated.
func checkProfile(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString("cpuprofile")
	if path == "" {
		return nil
	}
	if out, err := cmd.Flags().GetString("out"); err == nil && out != "" {
		p, errP := canonical(path)
		o, errO := canonical(out)
		if errP == nil && errO == nil && (p == o || within(p, o)) {
			return usagef("--cpuprofile %s would write into or over --out %s; choose another path", path, out)
		}
	}
	if err := outdir.CheckFile("--cpuprofile", path, false, outdir.HasPrefix(gzipMagic)); err != nil {
		return usageError{err}
	}
	return nil
}

// startProfile starts the CPU profile --cpuprofile asks for, into a
// temporary file that stop renames into place.
func startProfile(cmd *cobra.Command) (stop func() error, err error) {
	path, _ := cmd.Flags().GetString("cpuprofile")
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, usagef("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		err := f.Chmod(0o644)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// printJSON writes v to w as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newRootCmd builds the command tree, writing to s.
func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "vlora-convert",
		Short: "Compress transformer checkpoints into Vertical-LoRA form, run and verify them",
		Long: `vlora-convert turns a Hugging Face model directory (config.json + safetensors) into a
Vertical-LoRA (VLoRA) file: the layer stack is cut into compounds of K consecutive layers, each
compound keeps one dense base per parameter and every other layer stores a rank-r increment B·A.

Exit codes: 0 success, 1 failure (or a verification threshold missed), 2 invalid usage or input.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("cpuprofile", "", "write a CPU profile of the command to this file (read it with go tool pprof)")
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCompressCmd(s),
		newInspectCmd(s),
		newExpandCmd(s),
		newInferCmd(s),
		newVerifyCmd(s),
		newDistillCmd(s),
		newTokenizeCmd(s),
		newGenerateCmd(s),
	)
	return root
}

// execute runs root with ctx. Errors raised before a command starts
// running (unknown commands, missing required flags, wrong argument counts)
// are usage errors.
func execute(ctx context.Context, root *cobra.Command) error {
	started := false
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if err := c.ValidateRequiredFlags(); err != nil {
			return usageError{err}
		}
		if err := c.ValidateFlagGroups(); err != nil {
			return usageError{err}
		}
		if err := checkProfile(c); err != nil {
			return err
		}
		started = true
		return nil
	}
	err := root.ExecuteContext(ctx)
	if err != nil && !started {
		var ee exitError
		if !errors.As(err, &ee) {
			err = usageError{err}
		}
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels ctx; a second one terminates the process.
	go func() { <-ctx.Done(); stop() }()
	s := streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := execute(ctx, newRootCmd(s))
	if err != nil {
		var ee exitError
		if !errors.As(err, &ee) || ee.msg != "" {
			fmt.Fprintln(s.ErrOut, errorLine(err))
		}
	}
	os.Exit(exitCode(err))
}

// maxErrorLine bounds the error line main prints, in bytes.
const maxErrorLine = 299

// errorLine formats err as the one line main prints: prefixed with the
// command's name, newlines folded into spaces and cut at maxErrorLine
// bytes, so that no input, however large, turns into a dump.
func errorLine(err error) string {
	line := strings.Join(strings.Fields("vlora-convert: "+err.Error()), " ")
	if len(line) > maxErrorLine {
		cut := maxErrorLine - len("…")
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	return line
}
