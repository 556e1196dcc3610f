//go:build unix

package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// TestLoadFIFO checks that a FIFO as tokenizer.json or as
// tokenizer_config.json is refused at once, not read (which would block
// until a writer appears).
func TestLoadFIFO(t *testing.T) {
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		dir := t.TempDir()
		if name != "tokenizer.json" {
			os.WriteFile(filepath.Join(dir, "tokenizer.json"), smallTokenizer(t, nil), 0o644)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Skip(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Load(dir); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("%s a FIFO: err %v, want ErrInvalid", name, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s a FIFO: Load blocked", name)
		}
	}
}
