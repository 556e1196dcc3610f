package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCancelled runs a command line with stdin, its context cancelled
// after delay, and returns the stderr, the exit code and how long the
// command took after the cancellation.
func runCancelled(t *testing.T, stdin io.Reader, delay time.Duration, args ...string) (string, int, time.Duration) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(streams{In: stdin, Out: &out, ErrOut: &errb})
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	time.AfterFunc(delay, func() { cancelled = time.Now(); cancel() })
	err := execute(ctx, root)
	late := time.Since(cancelled)
	if err != nil {
		errb.WriteString(errorLine(err) + "\n")
	}
	return errb.String(), exitCode(err), late
}

// TestCancelStopsPromptly cancels commands in their long loops (reading a
// pipe that never ends, tokenizing a large input, reading and tokenizing
// text data): each stops within two seconds with exit code 1 and writes
// nothing.
func TestCancelStopsPromptly(t *testing.T) {
	m := copyModel(t)
	if err := os.WriteFile(filepath.Join(m, "tokenizer.json"), charTokenizer(t), 0o644); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 1<<20) // 45 MiB
	data := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(data, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name  string
		stdin io.Reader
		args  []string
	}{
		{"tokenize a pipe that never ends", pr, []string{"tokenize", "--tokenizer", m}},
		{"tokenize a large input", strings.NewReader(big), []string{"tokenize", "--tokenizer", m}},
		{"compress on large text data", nil, []string{"compress", "--model", m, "--out", out, "--data", data, "--seq-len", "16", "--distill-steps", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code, late := runCancelled(t, tc.stdin, 300*time.Millisecond, tc.args...)
			if code != exitFailure || !strings.Contains(stderr, "context canceled") {
				t.Errorf("exit %d, stderr %q; want 1 and the cancellation", code, stderr)
			}
			if late > 2*time.Second {
				t.Errorf("stopped %v after the cancellation", late)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("compress left %s behind (%v)", out, err)
	}
}
