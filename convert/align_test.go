package convert

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// alignedTol bounds ‖Δlogits‖/‖logits‖ between the original and its aligned
// compression at full rank: float32 rounding of the rotations, of base +
// increment, and of the summation order, each about 1e-7.
const alignedTol = 1e-5

// TestAlignedCompressionIsExact compresses the Llama and Qwen2 fixtures
// (the latter with q/k/v biases) with alignment, mean bases and exact
// increments, and compares the stored model's logits with the original's.
func TestAlignedCompressionIsExact(t *testing.T) {
	for _, name := range []string{"llama-gqa-untied", "qwen2-bias-tied"} {
		t.Run(name, func(t *testing.T) {
			dir := testenv.GoldenModel(t, name)
			res, err := Compress(context.Background(), dir, t.TempDir(), Options{
				CompoundSize: 4, Energy: 1, Base: vlora.BaseMean, Align: true, KeepModel: true})
			if err != nil {
				t.Fatal(err)
			}
			if a := res.Manifest.Align; a == nil || a.Reference != string(align.Mean) {
				t.Fatalf("manifest align %+v, want reference mean", a)
			}
			orig, err := model.LoadDense(dir)
			if err != nil {
				t.Fatal(err)
			}
			comp, err := model.FromVLoRA(res.Model)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			in := &transformer.Input{Batch: 2, Seq: 16, IDs: make([]int, 32)}
			for i := range in.IDs {
				in.IDs[i] = rng.IntN(orig.Config.VocabSize)
			}
			want, err := orig.Net.Forward(in, transformer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := comp.Net.Forward(in, transformer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e := relErr(got.Logits, want.Logits)
			t.Logf("logits rel err %.2e", e)
			if e > alignedTol {
				t.Fatalf("logits rel err %.2e > %.0e", e, alignedTol)
			}
		})
	}
}

func TestAlignUnsupported(t *testing.T) {
	for _, name := range []string{"gpt2", "bert", "vit"} {
		t.Run(name, func(t *testing.T) {
			_, err := Compress(context.Background(), testenv.GoldenModel(t, name), t.TempDir(), Options{Align: true})
			if !errors.Is(err, align.ErrUnsupported) {
				t.Fatalf("error %v, want align.ErrUnsupported", err)
			}
		})
	}
}
