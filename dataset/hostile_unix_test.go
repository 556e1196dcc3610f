//go:build unix

package dataset

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// TestLoadFIFO checks that a FIFO as a data file, or as a .txt file in a
// data directory, is refused at once instead of blocking on a read.
func TestLoadFIFO(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d", "a.txt"), "some text to read")
	for _, p := range []string{filepath.Join(dir, "pipe.txt"), filepath.Join(dir, "pipe.safetensors"), filepath.Join(dir, "d", "pipe.txt")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip(err)
		}
	}
	opt := LoadOptions{TokenizerPath: charTokenizerDir(t), SeqLen: 4}
	for _, p := range []string{filepath.Join(dir, "pipe.txt"), filepath.Join(dir, "pipe.safetensors"), filepath.Join(dir, "d")} {
		done := make(chan error, 1)
		go func() { _, err := Load(context.Background(), p, opt); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("%s: err %v, want ErrInvalid", p, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s: Load blocked on a FIFO", p)
		}
	}
}
