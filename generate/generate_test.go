package generate

import (
	"math/rand/v2"
	"testing"
)

// TestSamplingNext checks the token choice: greedy takes the arg max, top-k
// 1 does too at any temperature, top-p keeps only the tokens it should, and
// a seed fixes the draws.
func TestSamplingNext(t *testing.T) {
	logits := []float32{0.1, 3, 2.9, -1, 0}
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
	if got := (Options{}).Next(logits, rng()); got != 1 {
		t.Errorf("greedy chose %d", got)
	}
	for i := 0; i < 50; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 0))
		if got := (Options{Temperature: 5, TopK: 1, TopP: 1}).Next(logits, r); got != 1 {
			t.Fatalf("top-k 1 chose %d", got)
		}
		// p(1) ≈ 0.5 and p(2) ≈ 0.45 at temperature 1: top-p 0.9 keeps
		// exactly those two.
		if got := (Options{Temperature: 1, TopP: 0.9}).Next(logits, r); got != 1 && got != 2 {
			t.Fatalf("top-p 0.9 chose %d", got)
		}
	}
	a, b := rng(), rng()
	for i := 0; i < 20; i++ {
		s := Options{Temperature: 2, TopP: 1}
		if s.Next(logits, a) != s.Next(logits, b) {
			t.Fatal("same seed, different draws")
		}
	}
}

// TestOptionsValidate checks the ranges of the options.
func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{},
		{MaxTokens: 1, Temperature: -1},
		{MaxTokens: 1, TopK: -1},
		{MaxTokens: 1, TopP: 1.5},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Options{MaxTokens: 1, TopP: 0.9, Temperature: 0.7}).Validate(); err != nil {
		t.Error(err)
	}
}
