package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/outdir"
)

// stopContext is cancelled, as SIGINT cancels main's context, the first
// time its Err method is called once stop reports true; the stages poll Err
// between steps, so the interruption lands at a reproducible point.
type stopContext struct {
	context.Context
	cancel context.CancelFunc
	stop   func() bool
}

func (c *stopContext) Err() error {
	if c.Context.Err() == nil && c.stop() {
		c.cancel()
	}
	return c.Context.Err()
}

// runCtx is run with a context.
func runCtx(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(streams{Out: &out, ErrOut: &errb})
	root.SetArgs(args)
	err := execute(ctx, root)
	if err != nil {
		errb.WriteString(errorLine(err) + "\n")
	}
	return errb.String(), exitCode(err)
}

// tempFiles lists the writers' temporary files under root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestInterruptResume interrupts compress and distill after their first
// checkpoint and expand after a few tensors, and checks that the
// interrupted run leaves no temporary file, keeps the checkpoint (or, for
// expand, no output at all), and that rerunning (with --resume) writes a
// file byte-identical to an uninterrupted run's.
func TestInterruptResume(t *testing.T) {
	fx := newHostileFixture(t)
	cases := []struct {
		name string
		// cmd returns the command line writing to out.
		cmd func(c *hostileDirs, out string) []string
		// file is the result compared, relative to out.
		file string
		// stop decides when to interrupt, given out.
		stop func(out string) func() bool
		// keep is the file an interrupted run keeps ("" for none).
		keep   string
		resume bool
	}{
		{"compress", func(c *hostileDirs, out string) []string {
			return []string{"compress", "--model", c.M, "--out", out, "-k", "2", "-r", "4", "--distill-steps", "9",
				"--batch", "2", "--seq-len", "8", "--checkpoint-every", "3", "--data", c.D, "-q"}
		}, "model.vlora.safetensors", afterFile(staged(checkpointName)), staged(checkpointName), true},
		{"distill", func(c *hostileDirs, out string) []string {
			return []string{"distill", c.V, "--original", c.M, "--out", out, "--steps", "9",
				"--batch", "2", "--seq-len", "8", "--checkpoint-every", "3", "--data", c.D, "-q"}
		}, "model.vlora.safetensors", afterFile(staged(checkpointName)), staged(checkpointName), true},
		{"expand", func(c *hostileDirs, out string) []string {
			return []string{"expand", c.V, "--out", out}
		}, "model.safetensors", afterCalls(5), "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fx.copies(t)
			straight := filepath.Join(c.Root, "straight")
			if stderr, code := runCtx(t, context.Background(), tc.cmd(c, straight)...); code != 0 {
				t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
			}
			out := filepath.Join(c.Root, "interrupted")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stderr, code := runCtx(t, &stopContext{Context: ctx, cancel: cancel, stop: tc.stop(out)}, tc.cmd(c, out)...)
			if code != 1 || !strings.Contains(stderr, "canceled") {
				t.Fatalf("interrupted run: exit %d, want 1 naming the cancellation: %s", code, stderr)
			}
			if tmp := tempFiles(t, c.Root); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
			if tc.keep == "" {
				if _, err := os.Stat(out); err == nil {
					t.Errorf("interrupted run left %s", out)
				}
			} else if _, err := os.Stat(filepath.Join(out, tc.keep)); err != nil {
				t.Errorf("checkpoint not kept: %v", err)
			}
			again := tc.cmd(c, out)
			if tc.resume {
				again = append(again, "--resume")
			}
			if stderr, code := runCtx(t, context.Background(), again...); code != 0 {
				t.Fatalf("rerun: exit %d: %s", code, stderr)
			}
			a, err := os.ReadFile(filepath.Join(straight, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(out, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("resumed %s differs from the uninterrupted run's (%d and %d bytes)", tc.file, len(b), len(a))
			}
			for _, p := range []string{checkpointName, staged(checkpointName), outdir.StagingName, outdir.LockName} {
				if _, err := os.Stat(filepath.Join(out, p)); err == nil {
					t.Errorf("%s left after the resumed run finished", p)
				}
			}
		})
	}
}

// staged names a file in the staging directory of an output directory,
// where an interrupted run keeps its checkpoint.
func staged(name string) string { return filepath.Join(outdir.StagingName, name) }

// afterFile interrupts once dir/name exists.
func afterFile(name string) func(dir string) func() bool {
	return func(dir string) func() bool {
		return func() bool {
			_, err := os.Stat(filepath.Join(dir, name))
			return err == nil
		}
	}
}

// afterCalls interrupts at the n-th poll.
func afterCalls(n int) func(string) func() bool {
	return func(string) func() bool {
		calls := 0
		return func() bool {
			calls++
			return calls >= n
		}
	}
}
