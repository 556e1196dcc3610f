package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats/gguf"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// TestExpandGGUF writes a GGUF file from a dense directory and from a
// VLoRA file, and checks its tensors and metadata.
func TestExpandGGUF(t *testing.T) {
	src := testenv.SharedModel(t, "tinystories260K")
	dir := t.TempDir()
	out := filepath.Join(dir, "sub", "ts.gguf")
	// An output file goes into an existing directory, as infer --out's.
	if _, stderr, code := run(t, "expand", src, "--format", "gguf", "--out", out); code != 2 || !strings.Contains(stderr, "its directory") {
		t.Fatalf("missing directory: exit %d: %s", code, stderr)
	}
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "expand", src, "--format", "gguf", "--dtype", "q8_0", "--out", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	g, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for key, want := range map[string]any{
		"general.architecture":         "llama",
		"llama.block_count":            uint32(5),
		"llama.attention.head_count":   uint32(8),
		"tokenizer.ggml.model":         "llama",
		"tokenizer.ggml.bos_token_id":  uint32(1),
		"tokenizer.ggml.add_bos_token": true,
	} {
		if got := g.KV[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if toks, _ := g.KV["tokenizer.ggml.tokens"].([]string); len(toks) != 512 {
		t.Errorf("%d tokens, want 512", len(toks))
	}
	// Tied head: no output.weight; 64-wide rows are Q8_0, 172-wide F16,
	// norms F32.
	if _, ok := g.Tensor("output.weight"); ok {
		t.Error("output.weight written for a tied head")
	}
	for name, want := range map[string]gguf.Type{
		"blk.0.attn_q.weight": gguf.Q8_0, "blk.4.ffn_down.weight": gguf.F16, "output_norm.weight": gguf.F32,
	} {
		if info, ok := g.Tensor(name); !ok || info.Type != want {
			t.Errorf("%s: %+v, want type %v", name, info, want)
		}
	}

	vdir := filepath.Join(dir, "v")
	if _, stderr, code := run(t, "compress", "--model", src, "--out", vdir, "-k", "5", "-r", "4", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	vout := filepath.Join(dir, "v.gguf")
	if _, stderr, code := run(t, "expand", vdir, "--format", "gguf", "--out", vout); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	os.Remove(vout)
	// compress copies the tokenizer beside the file; without it the export
	// is refused.
	if err := os.Remove(filepath.Join(vdir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "expand", vdir, "--format", "gguf", "--out", vout)
	if code != 2 || !strings.Contains(stderr, "tokenizer") {
		t.Errorf("without a tokenizer beside the VLoRA file: exit %d, %q; want 2 naming the tokenizer", code, stderr)
	}
	if _, err := os.Stat(vout); err == nil {
		t.Error("a refused export left a file")
	}
	if _, stderr, code := run(t, "expand", vdir, "--format", "gguf", "--tokenizer", src, "--out", vout); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if g, err := gguf.Open(vout); err != nil {
		t.Fatal(err)
	} else {
		if info, ok := g.Tensor("blk.3.ffn_up.weight"); !ok || info.Type != gguf.F16 || info.Shape[0] != 172 {
			t.Errorf("blk.3.ffn_up.weight: %+v", info)
		}
		g.Close()
	}
}

// TestExpandGGUFRefuses checks the refusals of the GGUF flags: exit code 2,
// one line naming the flag, nothing written.
func TestExpandGGUFRefuses(t *testing.T) {
	src := testenv.GoldenModel(t, "llama-gqa-untied")
	dir := t.TempDir()
	out := filepath.Join(dir, "m.gguf")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"expand", src, "--format", "gguf", "--dtype", "int4", "--out", out}, "--dtype"},
		{[]string{"expand", src, "--format", "onnx", "--out", out}, "--format"},
		{[]string{"expand", src, "--dtype", "f16", "--out", dir}, "--dtype"},
		{[]string{"expand", src, "--format", "gguf", "--out", dir}, "directory"},
		{[]string{"expand", src, "--format", "gguf", "--out", filepath.Join(src, "model.safetensors")}, "--out"},
		{[]string{"expand", src, "--format", "gguf", "--out", out}, "tokenizer"},
		{[]string{"expand", testenv.GoldenModel(t, "bert"), "--format", "gguf", "--out", out}, "architecture"},
	}
	for _, tc := range tests {
		_, stderr, code := run(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, %q; want 2 and one line naming %s", tc.args[1:], code, stderr, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused export left a file")
	}
}
