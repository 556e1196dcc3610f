package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// TestInferMatchesGolden runs infer on golden inputs, for a dense model
// directory and for its full-rank VLoRA file, and compares every output with
// the Hugging Face reference. Tolerance 1e-4 relative, the product
// requirement; fp32 rounding alone gives about 1e-6.
func TestInferMatchesGolden(t *testing.T) {
	for _, name := range []string{"qwen2-bias-tied", "bert", "vit", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			dir := testenv.Testdata(t, filepath.Join("golden", name))
			golden := filepath.Join(dir, "golden.safetensors")
			tmp := t.TempDir()
			vl := filepath.Join(tmp, "vlora")
			if _, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "--energy", "1", "-k", "2", "--base", "mean", "--distill-steps", "0", "-q"); code != 0 {
				t.Fatalf("compress: %s", stderr)
			}
			for _, model := range []string{dir, vl} {
				out := filepath.Join(tmp, "out.safetensors")
				if _, stderr, code := run(t, "infer", "--model", model, "--input", golden, "--out", out, "--hidden-states"); code != 0 {
					t.Fatalf("infer %s: %s", model, stderr)
				}
				compareFiles(t, out, golden)
			}
		})
	}
}

func compareFiles(t *testing.T, got, want string) {
	t.Helper()
	g, err := formats.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := formats.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	n := 0
	for _, name := range w.Names() {
		if name == "input_ids" || name == "token_type_ids" || name == "pixel_values" {
			continue
		}
		if _, ok := g.Info(name); !ok {
			t.Errorf("output lacks %s", name)
			continue
		}
		a, _ := g.ReadFloat32(name)
		b, _ := w.ReadFloat32(name)
		var num, den float64
		for i := range b {
			d := float64(a[i]) - float64(b[i])
			num += d * d
			den += float64(b[i]) * float64(b[i])
		}
		if e := math.Sqrt(num / den); e > 1e-4 {
			t.Errorf("%s: relative error %.3g", name, e)
		}
		n++
	}
	if n == 0 {
		t.Error("nothing compared")
	}
}
