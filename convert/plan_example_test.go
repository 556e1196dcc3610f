package convert_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// One planner type spends either budget: a parameter budget on ranks and
// base modes, or a bit budget on a storage per 2-D tensor (here dense
// only, the default bit menu).
func ExamplePlanner() {
	ctx := context.Background()
	const dir = "../testdata/golden/llama-gqa-untied"
	opt := convert.Options{CompoundSize: 2}

	pl, err := convert.NewPlanner(ctx, dir, opt, []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero})
	if err != nil {
		fmt.Println(err)
		return
	}
	params, err := pl.Plan(0.6, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("parameters: %d of %d stored, within 0.6: %v\n", params.Stored, params.Original, float64(params.Stored) <= 0.6*float64(params.Original))

	bp, err := convert.NewBitPlanner(ctx, dir, opt, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	bits, err := bp.PlanBits(4.6, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("bits: %.3f per weight, within 4.6: %v\n", bits.BitsPerWeight(), bits.BitsPerWeight() <= 4.6)
	// Every 2-D tensor, embeddings and head included, has its storage:
	// here int8 per row or int4 in groups of 32, 64 or 128.
	var names []string
	for n := range bits.Choices {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Println(len(names), "tensors; the first:", names[0], bits.Choices[names[0]].Dense)
	// Output:
	// parameters: 48176 of 80304 stored, within 0.6: true
	// bits: 4.595 per weight, within 4.6: true
	// 30 tensors; the first: lm_head.weight true
}
