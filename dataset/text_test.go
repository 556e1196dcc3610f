package dataset

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// TestWindows checks the windows and scored spans of both perplexity
// methods on a stream of ten tokens.
func TestWindows(t *testing.T) {
	tokens := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, tc := range []struct {
		name           string
		t, stride, bos int
		perplexity     bool
		ids            []int
		score          []Span
	}{
		{"llama halves", 4, 0, -1, true, []int{0, 1, 2, 3, 4, 5, 6, 7}, []Span{{3, 4}, {3, 4}}},
		{"llama halves with bos", 4, 0, 99, true, []int{99, 1, 2, 3, 99, 5, 6, 7}, []Span{{3, 4}, {3, 4}}},
		{"sliding 2", 4, 2, -1, true, []int{0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9}, []Span{{1, 4}, {2, 4}, {2, 4}, {2, 4}}},
		{"sliding 3", 4, 3, -1, true, []int{0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9}, []Span{{1, 4}, {1, 4}, {1, 4}}},
		{"sliding, short last window padded", 4, 4, -1, true, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0}, []Span{{1, 4}, {1, 4}, {1, 2}}},
		{"sliding training windows", 4, 4, -1, false, []int{0, 1, 2, 3, 4, 5, 6, 7}, []Span{{1, 4}, {1, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Windows(tokens, tc.t, tc.stride, tc.bos, tc.perplexity)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.IDs, tc.ids) || !slices.Equal(d.Score, tc.score) || d.N != len(tc.score) || d.T != tc.t {
				t.Errorf("got N=%d T=%d ids %v score %v\nwant ids %v score %v", d.N, d.T, d.IDs, d.Score, tc.ids, tc.score)
			}
		})
	}
	for _, bad := range [][3]int{{11, 0, 0}, {1, 0, 0}, {4, 5, 0}, {4, -1, 0}} {
		if _, err := Windows(tokens, bad[0], bad[1], -1, true); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("Windows(t=%d, stride=%d): error %v, want formats.ErrInvalid", bad[0], bad[1], err)
		}
	}
}

// TestLoadText reads .txt, .jsonl and a directory of .txt files with
// bytellama's byte tokenizer (id = byte), and checks the directory digest
// against the shell pipeline its documentation gives.
func TestLoadText(t *testing.T) {
	tok := testenv.SharedModel(t, "bytellama")
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	txt := write("a.txt", "abcdefghij")
	raw := write("wiki.test.raw", "abcdefghij")
	jsonl := write("b.jsonl", `{"text": "abcd", "body": "wxyz"}`+"\n\n"+`{"text": "efgh", "body": "WXYZ"}`+"\n")
	corpus := filepath.Join(dir, "corpus")
	write("corpus/2.txt", "efgh")
	write("corpus/1.txt", "abcd")
	write("corpus/sub/0.txt", "ijkl")
	// A symbolic link to a file outside is read as that file.
	if err := os.Symlink(write("outside/m.txt", "mnop"), filepath.Join(corpus, "sub", "3.txt")); err != nil {
		t.Fatal(err)
	}
	bytes := func(s string) []int {
		var ids []int
		for _, b := range []byte(s) {
			ids = append(ids, int(b))
		}
		return ids
	}
	for _, tc := range []struct {
		name, path string
		opt        LoadOptions
		want       []int
	}{
		{"txt", txt, LoadOptions{SeqLen: 4}, bytes("abcdefgh")},
		{"UTF-8 text of another type", raw, LoadOptions{SeqLen: 4}, bytes("abcdefgh")},
		{"txt samples", txt, LoadOptions{SeqLen: 3, Samples: 2}, bytes("abcdef")},
		{"txt stride", txt, LoadOptions{SeqLen: 4, Stride: 3}, bytes("abcddefgghij")},
		{"jsonl", jsonl, LoadOptions{SeqLen: 4}, bytes("abcdefgh")},
		{"jsonl field", jsonl, LoadOptions{SeqLen: 8, TextField: "body"}, bytes("wxyzWXYZ")},
		{"directory", corpus, LoadOptions{SeqLen: 4}, bytes("abcdefghijklmnop")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.TokenizerPath = tok
			d, err := Load(context.Background(), tc.path, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.IDs, tc.want) || d.N*d.T != len(tc.want) || len(d.Score) != d.N || len(d.SHA256) != 64 {
				t.Errorf("ids %v (N=%d T=%d), want %v", d.IDs, d.N, d.T, tc.want)
			}
		})
	}
	d, err := Load(context.Background(), corpus, LoadOptions{SeqLen: 4, TokenizerPath: tok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command("sh", "-c", `cd "$1" && find -L . -type f | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum | sha256sum`, "sh", corpus).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Fields(string(out))[0]; d.SHA256 != want {
			t.Errorf("directory digest %s, the documented pipeline gives %s", d.SHA256, want)
		}
	}
	for _, tc := range []struct {
		name, path string
		opt        LoadOptions
	}{
		{"no tokenizer", txt, LoadOptions{SeqLen: 4}},
		{"too short", txt, LoadOptions{SeqLen: 11, TokenizerPath: tok}},
		{"stride beyond window", txt, LoadOptions{SeqLen: 4, Stride: 5, TokenizerPath: tok}},
		{"missing field", jsonl, LoadOptions{SeqLen: 4, TextField: "title", TokenizerPath: tok}},
		{"not json", write("bad.jsonl", "{\"text\": \"ab\"}\nnot json\n"), LoadOptions{SeqLen: 2, TokenizerPath: tok}},
		{"field not a string", write("num.jsonl", `{"text": 3}`), LoadOptions{SeqLen: 2, TokenizerPath: tok}},
		{"empty directory", t.TempDir(), LoadOptions{TokenizerPath: tok}},
		{"labels with text", txt, LoadOptions{SeqLen: 4, TokenizerPath: tok, Labels: "y"}},
		{"labels with other text", raw, LoadOptions{SeqLen: 4, TokenizerPath: tok, Labels: "y"}},
		{"binary file", write("x.bin", "\x00\x01\x02\xff"), LoadOptions{SeqLen: 2, TokenizerPath: tok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(context.Background(), tc.path, tc.opt); !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("error %v, want formats.ErrInvalid", err)
			}
		})
	}
}

// TestAddedBOS checks which tokenizers put a BOS before a sequence: Llama
// 2's (TemplateProcessing, id 1) does; the Llama 3 file here, whose
// post-processor is ByteLevel only (Hugging Face's reference encodings add
// nothing either), and the byte tokenizer do not.
func TestAddedBOS(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want int
	}{
		{"tokenizers/llama2", 1},
		{"tokenizers/llama3", -1},
		{"models/bytellama", -1},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			tok, err := tokenizer.Load(testenv.Shared(t, tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			if got := addedBOS(tok); got != tc.want {
				t.Errorf("addedBOS = %d, want %d", got, tc.want)
			}
		})
	}
}
