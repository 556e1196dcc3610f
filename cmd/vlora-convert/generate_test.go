package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/generate"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/tokenizer"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// greedyByForward is the reference greedy decoder: at every step it runs
// the full forward pass (the one checked against Hugging Face's logits)
// over the whole prefix and takes the most likely next token.
func greedyByForward(t *testing.T, m *model.Model, prompt []int, n int, eos []int) []int {
	t.Helper()
	ids := slices.Clone(prompt)
	var out []int
	for len(out) < n {
		res, err := m.Net.Forward(&transformer.Input{Batch: 1, Seq: len(ids), IDs: ids}, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v := res.LogitsShape[2]
		last := res.Logits[(len(ids)-1)*v : len(ids)*v]
		best := 0
		for i, x := range last {
			if x > last[best] {
				best = i
			}
		}
		out = append(out, best)
		ids = append(ids, best)
		if slices.Contains(eos, best) {
			break
		}
	}
	return out
}

// TestGenerateGreedyMatchesForward checks that greedy generation through
// the key/value cache gives the tokens of the reference greedy loop, for
// bytellama's directory, its full-rank VLoRA file and a VLoRA file stored
// as int4 codes, both on the resident model and on the weights as stored
// (model.Stored, what the command runs), and that the command prints their
// text.
func TestGenerateGreedyMatchesForward(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	vl := filepath.Join(t.TempDir(), "vlora")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "--energy", "1", "-k", "4", "--base", "mean", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	vlq := filepath.Join(t.TempDir(), "vlora-int4")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vlq, "-r", "16", "-k", "4", "--base", "mean", "--dtype", "int4", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress --dtype int4: %s", stderr)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	const promptText = "def read_file(path):\n    with open("
	const n = 40
	for _, path := range []string{dir, vl, vlq} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := model.LoadAs(path, model.Stored)
			if err != nil {
				t.Fatal(err)
			}
			defer stored.Close()
			prompt := tok.Encode(promptText, true)
			want := greedyByForward(t, m, prompt, n, nil)
			for _, mm := range []*model.Model{m, stored} {
				// No end-of-sequence token here: bytellama's is the
				// newline, and the comparison wants a long continuation.
				got, err := generate.Run(context.Background(), mm, prompt, sampling{MaxTokens: n}, func(int) error { return nil })
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("cached greedy tokens (stored %v) %v\nreference          %v", mm.Net.Operators(), got, want)
				}
			}
			// Through the command, which stops at the newline (EOS 10).
			wantEOS := greedyByForward(t, m, prompt, n, generate.EOS(m, tok))
			stdout, stderr, code := run(t, "generate", "--model", path, "--tokenizer", dir, "--prompt", promptText, "--max-tokens", "40", "-q")
			if code != 0 {
				t.Fatalf("generate: %s", stderr)
			}
			if wantText := tok.Decode(wantEOS, true); strings.TrimSuffix(stdout, "\n") != strings.TrimSuffix(wantText, "\n") {
				t.Errorf("generate printed %q, want %q", stdout, wantText)
			}
			stdout, _, _ = run(t, "generate", "--model", path, "--tokenizer", dir, "--prompt", promptText, "--max-tokens", "40", "--ignore-eos", "-q")
			if wantText := tok.Decode(want, true); strings.TrimSuffix(stdout, "\n") != strings.TrimSuffix(wantText, "\n") {
				t.Errorf("generate --ignore-eos printed %q, want %q", stdout, wantText)
			}
		})
	}
	// compress copied the tokenizer beside the VLoRA file; without it,
	// --compare takes the original's. --compare labels both continuations.
	if _, err := os.Stat(filepath.Join(vl, "tokenizer.json")); err != nil {
		t.Errorf("compress did not copy tokenizer.json: %v", err)
	}
	os.Remove(filepath.Join(vl, "tokenizer.json"))
	stdout, stderr, code := run(t, "generate", "--model", vl, "--compare", dir, "--prompt", promptText, "--max-tokens", "8", "-q")
	if code != 0 || !strings.Contains(stdout, "== original") || !strings.Contains(stdout, "== compressed") {
		t.Errorf("generate --compare: exit %d, %s\n%s", code, stderr, stdout)
	}
}

// TestGenerateErrors checks flag validation (exit 2).
func TestGenerateErrors(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	for _, args := range [][]string{
		{"--max-tokens", "0"},
		{"--temperature", "-1"},
		{"--temperature", "NaN"},
		{"--top-k", "-2"},
		{"--top-p", "0"},
		{"--top-p", "1.5"},
		{"--kv-cache", "f8"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := run(t, append([]string{"generate", "--model", dir, "--prompt", "x"}, args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2: %s", code, stderr)
			}
		})
	}
	if _, _, code := run(t, "generate", "--model", t.TempDir(), "--prompt", "x"); code != 2 {
		t.Errorf("no tokenizer: exit %d, want 2", code)
	}
	vit := testenv.GoldenModel(t, "vit")
	if _, stderr, code := run(t, "generate", "--model", vit, "--tokenizer", dir, "--prompt", "x"); code != 2 || !strings.Contains(stderr, "causal") {
		t.Errorf("image model: exit %d, want 2: %s", code, stderr)
	}
}
