package recipe_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/recipe"
)

// The default recipe under a budget of 4 bits per original weight on a
// tiny Llama: calibration sequences sampled from the original, every 2-D
// tensor's storage chosen for it, the refit, and a short
// quantization-aware distillation on more sampled sequences. Every field
// left zero keeps the default recipe's choice.
func ExampleRun() {
	out, err := os.MkdirTemp("", "recipe-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	const dir = "../testdata/golden/llama-gqa-untied"
	teacher, err := model.LoadDense(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	train, err := dataset.Sample(context.Background(), teacher, 8, 16, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := recipe.Run(context.Background(), recipe.Options{
		Model: dir, Out: out, Teacher: teacher,
		TargetBits: 4, CalibSamples: 4, CalibSeqLen: 16,
		Train: train, Distill: distill.Options{Steps: 2, Batch: 2},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	bits, _ := res.Manifest.BitsPerOriginalWeight()
	fmt.Printf("%d tensors planned; the file stores at most 4 bits per weight: %v\n", len(res.Plan.Bits.Choices), bits <= 4)
	fmt.Println("distilled for its plan:", res.Distilled.Steps, "steps,", res.Manifest.Quant.Active())
	// Output:
	// 30 tensors planned; the file stores at most 4 bits per weight: true
	// distilled for its plan: 2 steps, true
}
