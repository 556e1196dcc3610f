package generate_test

import (
	"context"
	"fmt"

	"github.com/vlora-convert/vlora-convert/generate"
	"github.com/vlora-convert/vlora-convert/model"
)

// Greedy continuation of a prompt of token ids by a small Llama, computed
// on its weights as stored. With a tokenizer.json beside the model,
// generate.Stream takes the prompt as text and writes the continuation's
// text as it is produced.
func Example() {
	m, err := model.LoadAs("../testdata/golden/llama-gqa-untied", model.Stored)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	opt := generate.Options{MaxTokens: 8, EOS: generate.EOS(m, nil)}
	ids, err := generate.Run(context.Background(), m, []int{1, 7, 42}, opt, func(id int) error {
		fmt.Printf("%d,", id) // each token as soon as it is chosen
		return nil
	})
	fmt.Println()
	fmt.Println(len(ids), "tokens", err)
	// Output:
	// 9,9,9,9,9,9,9,9,
	// 8 tokens <nil>
}
