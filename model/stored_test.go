package model_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// storedTol bounds the relative logit difference between a model run on
// its stored weights and the same weights converted to float32 once: the
// values are identical, only the order of the float32 sums differs (a few
// units of 2^-24 per product, amplified by the depth of the network).
const storedTol = 2e-5

// writeAs writes the checkpoint dir with every float tensor in dtype dt
// (and its config) into a new directory; poison, when set, makes the first
// element of that tensor a NaN.
func writeAs(t *testing.T, dir string, dt formats.DType, poison string) string {
	t.Helper()
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := t.TempDir()
	var specs []formats.TensorSpec
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		specs = append(specs, formats.TensorSpec{Name: n, DType: dt, Shape: info.Shape})
	}
	w, err := formats.Create(filepath.Join(out, formats.SingleFile), nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ck.Names() {
		data, err := ck.ReadFloat32(n)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := formats.EncodeFloat32(nil, data, dt)
		if err != nil {
			t.Fatal(err)
		}
		if n == poison {
			binary.LittleEndian.PutUint16(raw, 0x7fc0)
		}
		if err := w.WriteRaw(n, raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, formats.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, formats.ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// maxRelDiff returns max|a−b| / max|b|.
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// TestStoredMatchesResident runs dense checkpoints (BF16, F16 and F32;
// untied and tied heads, biases, GPT-2's [in, out] weights, which stay
// dense) and VLoRA files (F32, BF16 and int4) on their stored weights and
// on the same weights converted to float32, over a pass of 10 positions
// (decoded a block of rows at a time) and a decoding step (read directly).
func TestStoredMatchesResident(t *testing.T) {
	llama := testenv.GoldenModel(t, "llama-gqa-untied")
	dirs := map[string]string{
		"llama-bf16": writeAs(t, llama, formats.BF16, ""),
		"llama-f16":  writeAs(t, llama, formats.F16, ""),
		"qwen2-f32":  testenv.GoldenModel(t, "qwen2-bias-tied"),
		"gpt2-f32":   testenv.GoldenModel(t, "gpt2"),
	}
	res, err := convert.Compress(context.Background(), llama, t.TempDir(), convert.Options{CompoundSize: 2, Rank: 4, Base: vlora.BaseMean, KeepModel: true})
	if err != nil {
		t.Fatal(err)
	}
	dirs["vlora-f32"] = res.Path
	vm := res.Model
	vm.Manifest.DType = "BF16"
	dirs["vlora-bf16"] = filepath.Join(t.TempDir(), vlora.FileName)
	if err := vm.Save(dirs["vlora-bf16"]); err != nil {
		t.Fatal(err)
	}
	vm.Manifest.DType = "F32"
	plan := vlora.UniformPlan(quant.Scheme{Bits: 4, GroupSize: 32, Full: true})
	vm.Manifest.Quant = &plan
	dirs["vlora-int4"] = filepath.Join(t.TempDir(), vlora.FileName)
	if err := vm.Save(dirs["vlora-int4"]); err != nil {
		t.Fatal(err)
	}
	in := &transformer.Input{Batch: 2, Seq: 5, IDs: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for name, path := range dirs {
		t.Run(name, func(t *testing.T) {
			res, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			st, err := model.LoadAs(path, model.Stored)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if !st.Net.Operators() {
				t.Fatal("not loaded on operators")
			}
			want, err := res.Net.Forward(in, transformer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.Net.Forward(in, transformer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got.Logits, want.Logits); d > storedTol {
				t.Errorf("forward: relative logit difference %.3g > %g", d, storedTol)
			}
			dec, err := st.Net.NewDecoder(2, 5)
			if err != nil {
				t.Fatal(err)
			}
			V := want.LogitsShape[2]
			for pos := range 5 {
				logits, err := dec.Step([]int{in.IDs[pos], in.IDs[5+pos]})
				if err != nil {
					t.Fatal(err)
				}
				for b := range 2 {
					ref := want.Logits[(b*5+pos)*V : (b*5+pos+1)*V]
					if d := maxRelDiff(logits[b*V:(b+1)*V], ref); d > storedTol {
						t.Fatalf("step %d, sequence %d: relative logit difference %.3g > %g", pos, b, d, storedTol)
					}
				}
			}
		})
	}
}

// TestStoredRefusesNonFinite checks that a NaN in a stored BF16 matrix is
// refused at load, naming the tensor.
func TestStoredRefusesNonFinite(t *testing.T) {
	llama := testenv.GoldenModel(t, "llama-gqa-untied")
	const bad = "model.layers.1.mlp.up_proj.weight"
	dir := writeAs(t, llama, formats.BF16, bad)
	_, err := model.LoadAs(dir, model.Stored)
	if !errors.Is(err, formats.ErrInvalid) || !contains(err.Error(), bad) {
		t.Fatalf("got %v, want an invalid-input error naming %s", err, bad)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestLoadDenseRounded checks the rounded-to-nearest model against the
// resident model with its 2-D tensors rounded by quant.RoundToNearest (the
// same values; only the order of the float32 sums differs, storedTol), on
// untied and tied heads and GPT-2's [in, out] weights (read dense), in
// int4/g32 and int8 per row, over a pass of 10 positions and decoding
// steps of one sequence.
func TestLoadDenseRounded(t *testing.T) {
	in := &transformer.Input{Batch: 2, Seq: 5, IDs: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for _, name := range []string{"llama-gqa-untied", "qwen2-bias-tied", "gpt2"} {
		for _, s := range []quant.Scheme{{Bits: 4, GroupSize: 32}, {Bits: 8}} {
			t.Run(name+"/"+s.String(), func(t *testing.T) {
				dir := testenv.GoldenModel(t, name)
				res, err := model.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				var ws []quant.Weight
				for n, p := range res.Net.Params {
					ws = append(ws, quant.Weight{Name: n, Shape: p.Shape, Data: p.Data})
				}
				if _, err := quant.RoundToNearest(ws, s); err != nil {
					t.Fatal(err)
				}
				rt, err := model.LoadDenseRounded(dir, s)
				if err != nil {
					t.Fatal(err)
				}
				defer rt.Close()
				want, err := res.Net.Forward(in, transformer.Options{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := rt.Net.Forward(in, transformer.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxRelDiff(got.Logits, want.Logits); d > storedTol {
					t.Errorf("forward: relative logit difference %.3g > %g", d, storedTol)
				}
				dec, err := rt.Net.NewDecoder(2, 5)
				if err != nil {
					t.Fatal(err)
				}
				V := want.LogitsShape[2]
				for pos := range 5 {
					logits, err := dec.Step([]int{in.IDs[pos], in.IDs[5+pos]})
					if err != nil {
						t.Fatal(err)
					}
					for b := range 2 {
						ref := want.Logits[(b*5+pos)*V : (b*5+pos+1)*V]
						if d := maxRelDiff(logits[b*V:(b+1)*V], ref); d > storedTol {
							t.Fatalf("step %d, sequence %d: relative logit difference %.3g > %g", pos, b, d, storedTol)
						}
					}
				}
			})
		}
	}
	if _, err := model.LoadDenseRounded(testenv.GoldenModel(t, "gpt2"), quant.Scheme{Bits: 9}); err == nil {
		t.Error("a 9-bit scheme accepted")
	}
}
