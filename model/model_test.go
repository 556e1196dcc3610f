package model_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// exactTol bounds the relative logit difference between a model and its
// exact (energy 1) compression: the dense deltas are stored in float32, so
// base + delta rounds each weight once (2^-24 relative), which the forward
// pass amplifies by a small factor.
const exactTol = 1e-5

// TestLoadDenseAndVLoRAAgree loads a dense directory and its exact VLoRA
// compression (file, directory, and in memory) and checks that they detect
// as such and give the same logits.
func TestLoadDenseAndVLoRAAgree(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	res, err := convert.Compress(context.Background(), dir, out, convert.Options{CompoundSize: 2, Energy: 1, KeepModel: true})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dense.VLoRA != nil || model.IsVLoRA(dir) || !dense.IsCausalLM() {
		t.Fatalf("dense model: VLoRA %v, IsVLoRA %v, causal %v", dense.VLoRA != nil, model.IsVLoRA(dir), dense.IsCausalLM())
	}
	in := &transformer.Input{Batch: 2, Seq: 5, IDs: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	want, err := dense.Net.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inMemory, err := model.FromVLoRA(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (*model.Model, error){
		"directory": func() (*model.Model, error) { return model.Load(out) },
		"file":      func() (*model.Model, error) { return model.Load(res.Path) },
		"in memory": func() (*model.Model, error) { return inMemory, nil },
	} {
		t.Run(name, func(t *testing.T) {
			m, err := load()
			if err != nil {
				t.Fatal(err)
			}
			if m.VLoRA == nil || m.StoredParams != res.Manifest.Counts.ParamsStored {
				t.Fatalf("VLoRA %v, params %d, want %d", m.VLoRA != nil, m.StoredParams, res.Manifest.Counts.ParamsStored)
			}
			got, err := m.Net.Forward(in, transformer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(got.Logits, want.Logits); e > exactTol {
				t.Errorf("logits differ from the dense model's by %.2e relative", e)
			}
		})
	}
	if !model.IsVLoRA(out) || !model.IsVLoRA(res.Path) {
		t.Error("IsVLoRA does not recognise the written file")
	}
}

// TestMaterializeLayer checks that a change of a stored base reaches the
// dense weights of exactly the layers of its compound.
func TestMaterializeLayer(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	res, err := convert.Compress(context.Background(), dir, t.TempDir(), convert.Options{CompoundSize: 2, Rank: 2, KeepModel: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromVLoRA(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	const suffix = "mlp.down_proj.weight"
	base := res.Model.Tensors[vlora.BaseName(1, suffix)].Data
	for i := range base {
		base[i] += 1
	}
	before := map[int][]float32{}
	for l := range 4 {
		before[l] = append([]float32(nil), m.Net.Params[res.Model.LayerName(l, suffix)].Data...)
	}
	if err := m.Materialize(); err != nil {
		t.Fatal(err)
	}
	for l := range 4 {
		after := m.Net.Params[res.Model.LayerName(l, suffix)].Data
		want := float32(0)
		if l >= 2 { // compound 1 holds layers 2 and 3
			want = 1
		}
		for i := range after {
			// W = base + B·A moves by the base's change, up to one float32
			// rounding of values of order 1.
			if d := after[i] - before[l][i]; math.Abs(float64(d-want)) > 1e-5 {
				t.Fatalf("layer %d element %d moved by %g, want %g", l, i, d, want)
			}
		}
	}
}

// TestLoadErrors checks the typed errors of Load.
func TestLoadErrors(t *testing.T) {
	src := testenv.GoldenModel(t, "llama-gqa-untied")
	for _, tc := range []struct {
		name   string
		config string
		want   error
	}{
		{"unsupported architecture", `{"architectures":["MambaForCausalLM"],"model_type":"mamba"}`, model.ErrUnsupportedArchitecture},
		{"no config", "", formats.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644)
			if tc.config != "" {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o644)
			}
			if _, err := model.Load(dir); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func relErr(got, want []float32) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - float64(w)
		num += d * d
		den += float64(w) * float64(w)
	}
	return math.Sqrt(num / den)
}
