package main

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
// bytellama's directory and for its full-rank VLoRA file, and that the
// command prints their text.
func TestGenerateGreedyMatchesForward(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	vl := filepath.Join(t.TempDir(), "vlora")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "--energy", "1", "-k", "4", "--base", "mean", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	const promptText = "def read_file(path):\n    with open("
	const n = 40
	for _, path := range []string{dir, vl} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			prompt := tok.Encode(promptText, true)
			// No end-of-sequence token here: bytellama's is the newline,
			// and the comparison wants a long continuation.
			got, err := generate(context.Background(), m, prompt, sampling{MaxTokens: n}, nil, func(int) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			want := greedyByForward(t, m, prompt, n, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("cached greedy tokens %v\nreference          %v", got, want)
			}
			// Through the command, which stops at the newline (EOS 10).
			wantEOS := greedyByForward(t, m, prompt, n, eosIDs(m, tok))
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

// TestSamplingNext checks the token choice: greedy takes the arg max, top-k
// 1 does too at any temperature, top-p keeps only the tokens it should, and
// a seed fixes the draws.
func TestSamplingNext(t *testing.T) {
	logits := []float32{0.1, 3, 2.9, -1, 0}
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
	if got := (sampling{}).next(logits, rng()); got != 1 {
		t.Errorf("greedy chose %d", got)
	}
	for i := 0; i < 50; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 0))
		if got := (sampling{Temperature: 5, TopK: 1, TopP: 1}).next(logits, r); got != 1 {
			t.Fatalf("top-k 1 chose %d", got)
		}
		// p(1) ≈ 0.5 and p(2) ≈ 0.45 at temperature 1: top-p 0.9 keeps
		// exactly those two.
		if got := (sampling{Temperature: 1, TopP: 0.9}).next(logits, r); got != 1 && got != 2 {
			t.Fatalf("top-p 0.9 chose %d", got)
		}
	}
	a, b := rng(), rng()
	for i := 0; i < 20; i++ {
		s := sampling{Temperature: 2, TopP: 1}
		if s.next(logits, a) != s.next(logits, b) {
			t.Fatal("same seed, different draws")
		}
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
