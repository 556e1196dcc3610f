package convert_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/verify"
)

// Compress a tiny Llama (4 layers) into compounds of K = 2 layers with
// rank-4 increments. The zero Options are the defaults (K = 8, rank 32,
// base "first", exact SVD, F32).
func ExampleCompress() {
	out, err := os.MkdirTemp("", "vlora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	res, err := convert.Compress(context.Background(), "../testdata/golden/llama-gqa-untied", out,
		convert.Options{CompoundSize: 2, Rank: 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	mf := res.Manifest
	fmt.Println(mf.Architecture, mf.LayerPrefix, mf.Compounds)
	fmt.Printf("%d of %d parameters stored\n", mf.Counts.ParamsStored, mf.Counts.ParamsOriginal)
	// Output:
	// LlamaForCausalLM model.layers. [[0 1] [2 3]]
	// 50608 of 80304 parameters stored
}

// The whole pipeline in memory: compress, distill towards the original on
// sequences sampled from it, and verify. The original is loaded once and
// the compressed model is passed from stage to stage without reading the
// file back.
func Example_pipeline() {
	ctx := context.Background()
	const dir = "../testdata/golden/llama-gqa-untied"
	out, err := os.MkdirTemp("", "vlora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)

	res, err := convert.Compress(ctx, dir, out, convert.Options{CompoundSize: 2, Rank: 4, KeepModel: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	original, err := model.LoadDense(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	train, err := dataset.Sample(ctx, original, 16, 16, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	svdOnly, err := model.FromVLoRA(res.Model)
	if err != nil {
		fmt.Println(err)
		return
	}
	before, err := verify.Run(ctx, original, svdOnly, verify.Options{Dataset: train})
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := distill.Run(ctx, original, res.Model, train, distill.Options{Steps: 40, Batch: 8, LR: 1e-2})
	if err != nil {
		fmt.Println(err)
		return
	}
	after, err := verify.Run(ctx, original, d.Student, verify.Options{Dataset: train, MaxKL: 0.5})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("distilled steps recorded:", res.Model.Manifest.Distill.Steps)
	fmt.Println("integrity checks run:", len(after.Integrity))
	// The mean KL is printed coarsely, so that the output does not depend on
	// the SIMD width of the machine: about 0.005 before, 0.0006 after.
	fmt.Println("KL before < 0.01:", *before.KLMean < 0.01, "after < 0.001:", *after.KLMean < 0.001)
	fmt.Println("KL fell:", *after.KLMean < *before.KLMean, "over", after.Positions, "positions; pass:", after.Pass)
	// Output:
	// distilled steps recorded: 40
	// integrity checks run: 4
	// KL before < 0.01: true after < 0.001: true
	// KL fell: true over 256 positions; pass: true
}
