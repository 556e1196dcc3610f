package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// charTokenizer is a tokenizer.json for the 96-token vocabulary of the
// llama-gqa-untied fixture: <unk> and the 95 printable ASCII characters,
// one token each.
func charTokenizer(t *testing.T) []byte {
	t.Helper()
	vocab := map[string]int{"<unk>": 0}
	for c := ' '; c <= '~'; c++ {
		vocab[string(c)] = len(vocab)
	}
	tok := map[string]any{
		"added_tokens": []any{map[string]any{"id": 0, "content": "<unk>", "special": true}},
		"model":        map[string]any{"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": []string{}},
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDefaultRecipeOnText runs compress with the default recipe (no recipe
// flags; distillation and continuations shortened) on a .txt file, a
// .jsonl file and a directory of .txt files: the text windows, which
// carry scored spans, join the continuations sampled by the original.
func TestDefaultRecipeOnText(t *testing.T) {
	m := copyModel(t)
	if err := os.WriteFile(filepath.Join(m, "tokenizer.json"), charTokenizer(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	text := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 12)
	txt := filepath.Join(tmp, "calib.txt")
	jsonl := filepath.Join(tmp, "calib.jsonl")
	dir := filepath.Join(tmp, "texts")
	var lines []string
	for i := range 4 {
		b, _ := json.Marshal(map[string]string{"text": text[i*100 : (i+1)*100]})
		lines = append(lines, string(b))
	}
	for p, body := range map[string]string{
		txt:                              text,
		jsonl:                            strings.Join(lines, "\n") + "\n",
		filepath.Join(dir, "a.txt"):      text[:250],
		filepath.Join(dir, "b", "b.txt"): text[250:],
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, data := range []string{txt, jsonl, dir} {
		t.Run(filepath.Base(data), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, stderr, code := run(t, "compress", "--model", m, "--out", out, "--data", data,
				"--seq-len", "16", "--distill-steps", "2", "--augment", "4", "--batch", "4", "-q")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "model.vlora.safetensors")); err != nil {
				t.Error(err)
			}
		})
	}
}
