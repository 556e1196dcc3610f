package verify_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/verify"
)

// Verify an exact compression (every increment kept at full energy) of a
// tiny Llama against its original, with thresholds, on sequences sampled
// from the original.
func ExampleRun() {
	ctx := context.Background()
	const dir = "../testdata/golden/llama-gqa-untied"
	out, err := os.MkdirTemp("", "vlora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	if _, err := convert.Compress(ctx, dir, out, convert.Options{CompoundSize: 2, Energy: 1}); err != nil {
		fmt.Println(err)
		return
	}
	original, err := model.LoadDense(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	compressed, err := model.Load(out)
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := verify.Run(ctx, original, compressed, verify.Options{Samples: 4, SeqLen: 16, MaxKL: 1e-6, MinAgreement: 0.99})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range rep.Integrity {
		fmt.Println(c.Name, c.OK)
	}
	fmt.Println("positions:", rep.Positions, "agreement:", *rep.Top1Agreement, "pass:", rep.Pass)
	// Output:
	// tensors true
	// shapes-dtypes true
	// manifest true
	// source-hashes true
	// positions: 64 agreement: 1 pass: true
}
