package tokenizer_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// Load reads a tokenizer.json (here a small WordPiece vocabulary in the
// BERT layout, from a model directory); Encode and Decode go between text
// and token ids.
func Example() {
	tok, err := tokenizer.Load("testdata/bert")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("Hello, world!", true) // with [CLS] ... [SEP]
	fmt.Println(ids)
	var toks []string
	for _, id := range ids {
		s, _ := tok.Token(id)
		toks = append(toks, s)
	}
	fmt.Println(strings.Join(toks, " "))
	fmt.Println(tok.Decode(ids, true)) // special tokens skipped
	// Output:
	// [2 14 16 15 12 3]
	// [CLS] hello , world ! [SEP]
	// hello, world!
}

// EncodeContext is the form for text from outside: it stops when the
// context is done, and fails (rather than hanging) when a regular
// expression of the tokenizer file backtracks without end.
func ExampleTokenizer_EncodeContext() {
	tok, err := tokenizer.Load("testdata/bert")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ids, err := tok.EncodeContext(ctx, "hello world", false)
	fmt.Println(ids, err)
	cancel()
	_, err = tok.EncodeContext(ctx, strings.Repeat("hello world ", 1000), false)
	fmt.Println(err)
	// Output:
	// [14 15] <nil>
	// context canceled
}

// A StreamDecoder prints generated text id by id without splitting a
// character or losing the spaces that depend on the previous token.
func ExampleStreamDecoder() {
	tok, err := tokenizer.Load("testdata/bert")
	if err != nil {
		log.Fatal(err)
	}
	d := tok.NewStreamDecoder(true)
	var sb strings.Builder
	for _, id := range tok.Encode("Hello, world!", true) {
		sb.WriteString(d.Next(id))
	}
	sb.WriteString(d.Flush())
	fmt.Printf("%q\n", sb.String())
	// Output:
	// "hello, world!"
}
