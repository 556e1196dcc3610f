package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// charTokenizerDir writes a tokenizer whose tokens are <unk> and the
// printable ASCII characters, one each, and returns its directory.
func charTokenizerDir(t *testing.T) string {
	t.Helper()
	vocab := map[string]int{"<unk>": 0}
	for c := ' '; c <= '~'; c++ {
		vocab[string(c)] = len(vocab)
	}
	b, _ := json.Marshal(map[string]any{"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": []string{}}})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadTextHostile checks that text that is not text, lines beyond the
// limit and files that are not regular are refused with an error naming
// the file (and the line), and that symbolic links to regular files are
// followed.
func TestLoadTextHostile(t *testing.T) {
	defer func(n int) { maxJSONLLine = n }(maxJSONLLine)
	maxJSONLLine = 1 << 10
	opt := LoadOptions{TokenizerPath: charTokenizerDir(t), SeqLen: 8}
	text := strings.Repeat("plain text. ", 10)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the data path
		want  []string                              // in the error; nil: loads
	}{
		{"binary .txt", func(t *testing.T, dir string) string {
			return write(t, filepath.Join(dir, "bin.txt"), "ELF\x7f\x00\x01\x02"+text)
		}, []string{"bin.txt", "NUL"}},
		{"mostly invalid UTF-8", func(t *testing.T, dir string) string {
			return write(t, filepath.Join(dir, "latin.txt"), strings.Repeat("\xff\xfe\xe9", 40)+text)
		}, []string{"latin.txt", "not UTF-8"}},
		{"a few Latin-1 letters", func(t *testing.T, dir string) string {
			return write(t, filepath.Join(dir, "fr.txt"), text+"caf\xe9")
		}, nil},
		{"binary file in a directory", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "d", "a.txt"), text)
			write(t, filepath.Join(dir, "d", "b.txt"), "\x00\x00")
			return filepath.Join(dir, "d")
		}, []string{"b.txt", "NUL"}},
		{"JSONL line beyond the limit", func(t *testing.T, dir string) string {
			return write(t, filepath.Join(dir, "long.jsonl"), `{"text":"a"}`+"\n"+`{"text":"`+strings.Repeat("b", 2000)+`"}`+"\n")
		}, []string{"long.jsonl:2", "1024 bytes"}},
		{"symbolic link to a text file", func(t *testing.T, dir string) string {
			target := write(t, filepath.Join(dir, "elsewhere", "real.txt"), text)
			symlink(t, target, filepath.Join(dir, "d", "link.txt"))
			return filepath.Join(dir, "d")
		}, nil},
		{"data directory given as a symbolic link", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "real", "a.txt"), text)
			symlink(t, filepath.Join(dir, "real"), filepath.Join(dir, "link"))
			return filepath.Join(dir, "link")
		}, nil},
		{"broken symbolic link", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "d", "a.txt"), text)
			symlink(t, filepath.Join(dir, "nowhere.txt"), filepath.Join(dir, "d", "gone.txt"))
			return filepath.Join(dir, "d")
		}, []string{"gone.txt", "broken"}},
		{"symbolic link to a directory", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "d", "a.txt"), text)
			write(t, filepath.Join(dir, "other", "b.txt"), text)
			symlink(t, filepath.Join(dir, "other"), filepath.Join(dir, "d", "sub"))
			return filepath.Join(dir, "d")
		}, []string{"sub", "directory"}},
		{"device as data file", func(*testing.T, string) string { return os.DevNull }, []string{os.DevNull, "not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			d, err := Load(context.Background(), path, opt)
			if tc.want == nil {
				if err != nil || d.N == 0 {
					t.Fatalf("err %v", err)
				}
				return
			}
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestLoadTextCancel checks that loading text stops on a cancelled
// context.
func TestLoadTextCancel(t *testing.T) {
	path := write(t, filepath.Join(t.TempDir(), "a.txt"), strings.Repeat("some words ", 1000))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, path, LoadOptions{TokenizerPath: charTokenizerDir(t), SeqLen: 8}); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func write(t *testing.T, path, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
}
