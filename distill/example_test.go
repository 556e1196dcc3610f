package distill_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/model"
)

// Distill a compressed tiny Llama towards its original on sequences sampled
// from the original. Run updates the VLoRA model in place and records the
// run in its manifest; the caller saves it (vlora.Model.Save).
func ExampleRun() {
	ctx := context.Background()
	const dir = "../testdata/golden/llama-gqa-untied"
	out, err := os.MkdirTemp("", "vlora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	res, err := convert.Compress(ctx, dir, out, convert.Options{CompoundSize: 2, Rank: 2, KeepModel: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	teacher, err := model.LoadDense(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	train, err := dataset.Sample(ctx, teacher, 16, 16, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := distill.Run(ctx, teacher, res.Model, train, distill.Options{Steps: 30, Batch: 8, Warmup: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	rec := res.Model.Manifest.Distill
	fmt.Println("steps:", r.Steps, "tokens:", r.Tokens)
	var first float64
	for _, l := range r.Log[:10] {
		first += l.Loss / 10
	}
	fmt.Println("mean loss of the last 10 steps below the first 10's:", r.FinalLoss < first)
	fmt.Println("recorded:", rec.Steps, "steps on", rec.Data)
	// Output:
	// steps: 30 tokens: 3840
	// mean loss of the last 10 steps below the first 10's: true
	// recorded: 30 steps on 16 sequences of 16 tokens sampled from the original model (seed 7)
}
