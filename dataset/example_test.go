package dataset_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vlora-convert/vlora-convert/dataset"
)

// Text data is encoded with a tokenizer (here one token per character)
// and cut into windows; Score holds the targets of each window that a
// perplexity counts (the second half, as llama-perplexity does, when the
// windows do not overlap).
func ExampleLoad_text() {
	d, err := dataset.Load(context.Background(), "testdata/chars/verse.txt",
		dataset.LoadOptions{TokenizerPath: "testdata/chars", SeqLen: 16})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.N, "windows of", d.T, "tokens")
	fmt.Println(d.IDs[:d.T])
	fmt.Println(d.Score)
	// Output:
	// 3 windows of 16 tokens
	// [53 90 72 70 83 1 53 90 72 70 83 13 1 67 86 83]
	// [{9 16} {9 16} {9 16}]
}

// Windows with a stride overlap, as in Hugging Face's sliding-window
// perplexity: each window scores only the targets no earlier window
// scored, and with perplexity set a shorter last window covers the tail.
func ExampleWindows() {
	tokens := []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	d, err := dataset.Windows(tokens, 4, 2, -1, true)
	if err != nil {
		log.Fatal(err)
	}
	for i := range d.N {
		fmt.Println(d.IDs[i*d.T:(i+1)*d.T], d.Score[i])
	}
	// Output:
	// [10 11 12 13] {1 4}
	// [12 13 14 15] {2 4}
	// [14 15 16 17] {2 4}
	// [16 17 18 19] {2 4}
}
