package model_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// storedBytellama compresses bytellama (K=8, r=32, mean base) once and
// saves it in F32 and in int4/g32/full, returning both paths.
func storedBytellama(b *testing.B) (f32, int4 string) {
	b.Helper()
	dir := testenv.SharedModel(b, "bytellama")
	out := b.TempDir()
	opt := convert.Options{KeepModel: true}
	opt.Base = vlora.BaseMean
	res, err := convert.Compress(context.Background(), dir, out, opt)
	if err != nil {
		b.Fatal(err)
	}
	plan := vlora.UniformPlan(quant.Scheme{Bits: 4, GroupSize: 32, Full: true})
	res.Model.Manifest.Quant = &plan
	int4 = filepath.Join(out, "int4.safetensors")
	if err := res.Model.Save(int4); err != nil {
		b.Fatal(err)
	}
	return res.Path, int4
}

// BenchmarkLoadBytellama loads the same VLoRA model of bytellama stored in
// F32 and in int4 (decoded at load), and runs one forward pass of 4 × 256
// tokens with each: the decoded model runs the same dense kernels.
func BenchmarkLoadBytellama(b *testing.B) {
	f32, int4 := storedBytellama(b)
	for _, c := range []struct{ name, path string }{{"F32", f32}, {"int4", int4}} {
		b.Run("load/"+c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := model.Load(c.path); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("forward/"+c.name, func(b *testing.B) {
			m, err := model.Load(c.path)
			if err != nil {
				b.Fatal(err)
			}
			in := dataset.Random(m.Config, 4, 256, 1).Gather([]int{0, 1, 2, 3})
			for b.Loop() {
				if _, err := m.Net.Forward(in, transformer.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
