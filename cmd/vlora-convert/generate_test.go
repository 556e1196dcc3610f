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

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

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

// q8GreedyMargin bounds, in logits, how far below the reference's best
// logit the token chosen by greedy decoding on an int4 file's stored
// weights may be. Its one-row products run on int8 activations (each
// activation rounded to 1/254 of its group's largest magnitude,
// kernels.MulStored), which moves bytellama's logits by a few hundredths,
// enough to swap two tokens of near-equal logits (as at position 35 of
// the prompt below), not a clear choice.
const q8GreedyMargin = 0.1

// greedyWithin checks that each token of got (greedy continuations of
// prompt) is, given the tokens before it, within margin of the most likely
// next token of m's reference forward pass; it returns the largest gap.
func greedyWithin(t *testing.T, m *model.Model, prompt, got []int, margin float64) float64 {
	t.Helper()
	ids := append(slices.Clone(prompt), got...)
	res, err := m.Net.Forward(&transformer.Input{Batch: 1, Seq: len(ids), IDs: ids}, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := res.LogitsShape[2]
	var worst float64
	for i, id := range got {
		pos := len(prompt) + i - 1
		row := res.Logits[pos*v : (pos+1)*v]
		gap := float64(slices.Max(row) - row[id])
		worst = max(worst, gap)
		if gap > margin {
			t.Fatalf("token %d (%d): %.3g below the reference's best logit, more than %g", i, id, gap, margin)
		}
	}
	return worst
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
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "--energy", "1", "-k", "4", "--base", "mean", "--distill-steps", "0", "--init", "plain", "--refit=false", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	vlq := filepath.Join(t.TempDir(), "vlora-int4")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vlq, "-r", "16", "-k", "4", "--base", "mean", "--dtype", "int4", "--distill-steps", "0", "--init", "plain", "--refit=false", "-q"); code != 0 {
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
				if path == vlq && mm == stored {
					// Integer one-row products: the same choices up to
					// near-ties (q8GreedyMargin).
					gap := greedyWithin(t, m, prompt, got, q8GreedyMargin)
					t.Logf("stored int4: %d of %d tokens as the reference's before the first difference; largest gap %.3g", commonPrefix(got, want), n, gap)
					continue
				}
				if !slices.Equal(got, want) {
					t.Fatalf("cached greedy tokens (stored %v) %v\nreference          %v", mm.Net.Operators(), got, want)
				}
			}
			if path == vlq {
				return // the command runs the stored model, checked above
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
