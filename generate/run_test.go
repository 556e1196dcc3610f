package generate

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
)

const golden = "../testdata/golden/llama-gqa-untied"

// TestRunStoredMatchesResident checks that sampling with a seed draws the
// same tokens on the weights as stored as on the resident float32 model,
// and that Run stops at an EOS token (emitted) and at MaxTokens.
func TestRunStoredMatchesResident(t *testing.T) {
	res, err := model.Load(golden)
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.LoadAs(golden, model.Stored)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Net.Operators() || res.Net.Operators() {
		t.Fatal("residency not as asked")
	}
	prompt := []int{1, 5, 9, 2}
	opt := Options{MaxTokens: 12, Temperature: 1.5, TopK: 20, TopP: 0.95, Seed: 3}
	var got [2][]int
	for i, m := range []*model.Model{res, st} {
		var emitted []int
		ids, err := Run(context.Background(), m, prompt, opt, func(id int) error { emitted = append(emitted, id); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != opt.MaxTokens || !slices.Equal(ids, emitted) {
			t.Fatalf("returned %v, emitted %v (want %d tokens)", ids, emitted, opt.MaxTokens)
		}
		got[i] = ids
	}
	if !slices.Equal(got[0], got[1]) {
		t.Fatalf("resident %v, stored %v", got[0], got[1])
	}
	opt.EOS = []int{got[0][3]}
	ids, err := Run(context.Background(), st, prompt, opt, func(int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := got[0][:slices.Index(got[0], got[0][3])+1]; !slices.Equal(ids, want) {
		t.Errorf("with EOS %d: %v, want %v", got[0][3], ids, want)
	}
}

// TestRunErrors checks bad input: ids outside the vocabulary, an empty
// prompt, and a cancelled context.
func TestRunErrors(t *testing.T) {
	m, err := model.LoadAs(golden, model.Stored)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nop := func(int) error { return nil }
	for _, prompt := range [][]int{nil, {-1}, {m.Config.VocabSize}} {
		if _, err := Run(context.Background(), m, prompt, Options{MaxTokens: 2}, nop); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("prompt %v: %v", prompt, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, m, []int{1}, Options{MaxTokens: 2}, nop); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestRunF16Cache checks that greedy decoding with a half-precision
// key/value cache chooses the same first 32 tokens as with the float32
// cache on bytellama, on its weights as stored, for two prompts.
func TestRunF16Cache(t *testing.T) {
	m, err := model.LoadAs(testenv.SharedModel(t, "bytellama"), model.Stored)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, prompt := range [][]int{{1, 100, 101, 32, 116}, {1, 68, 101, 102, 32}} {
		var got [2][]int
		for i, f16 := range []bool{false, true} {
			opt := Options{MaxTokens: 32, F16Cache: f16}
			ids, err := Run(context.Background(), m, prompt, opt, func(int) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			got[i] = ids
		}
		if len(got[0]) != 32 || !slices.Equal(got[0], got[1]) {
			t.Errorf("prompt %v: float32 cache %v, F16 cache %v", prompt, got[0], got[1])
		}
	}
}
