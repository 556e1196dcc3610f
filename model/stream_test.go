package model_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestStreamedMatchesResident checks, for dense checkpoints of several
// architectures and for a low-rank VLoRA file, that a streamed model gives
// exactly the logits and hidden states of the resident one (the same
// float32 weights reach the same kernels), also under concurrent passes,
// and holds no block weights outside a pass.
func TestStreamedMatchesResident(t *testing.T) {
	vdir := t.TempDir()
	if _, err := convert.Compress(context.Background(), testenv.GoldenModel(t, "llama-gqa-untied"), vdir,
		convert.Options{CompoundSize: 2, Rank: 4, Base: vlora.BaseMean}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		in         *transformer.Input
	}{
		{name: "llama", path: testenv.GoldenModel(t, "llama-gqa-untied"), in: &transformer.Input{Batch: 2, Seq: 5, IDs: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}},
		{name: "qwen2 tied", path: testenv.GoldenModel(t, "qwen2-bias-tied"), in: &transformer.Input{Batch: 1, Seq: 4, IDs: []int{3, 1, 4, 1}}},
		{name: "gpt2", path: testenv.GoldenModel(t, "gpt2"), in: &transformer.Input{Batch: 1, Seq: 4, IDs: []int{5, 9, 2, 6}}},
		{name: "vlora", path: vdir, in: &transformer.Input{Batch: 2, Seq: 3, IDs: []int{7, 1, 8, 2, 8, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := model.LoadAs(tc.path, model.Resident)
			if err != nil {
				t.Fatal(err)
			}
			st, err := model.LoadAs(tc.path, model.Streamed)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if res.Net.Streamed() || !st.Net.Streamed() {
				t.Fatalf("streamed: resident %v, streamed %v", res.Net.Streamed(), st.Net.Streamed())
			}
			if st.StoredParams != res.StoredParams || st.StoredBytes != res.StoredBytes {
				t.Errorf("stored %d/%d, resident %d/%d", st.StoredParams, st.StoredBytes, res.StoredParams, res.StoredBytes)
			}
			want, err := res.Net.Forward(tc.in, transformer.Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			outs := make([]*transformer.Output, 3)
			errs := make([]error, len(outs))
			for i := range outs {
				wg.Go(func() { outs[i], errs[i] = st.Net.Forward(tc.in, transformer.Options{Hidden: true}) })
			}
			wg.Wait()
			for i, got := range outs {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if !slices.Equal(got.Logits, want.Logits) {
					t.Errorf("pass %d: logits differ from the resident model's", i)
				}
				for h := range want.HiddenStates {
					if !slices.Equal(got.HiddenStates[h], want.HiddenStates[h]) {
						t.Errorf("pass %d: hidden state %d differs", i, h)
					}
				}
			}
			for l := range st.Net.NumLayers() {
				for _, p := range st.Net.BlockParams(l) {
					if p.Data != nil {
						t.Errorf("%s holds data outside a pass", p.Name)
					}
				}
			}
		})
	}
}

// TestAutoResidency checks that Auto keeps small models resident.
func TestAutoResidency(t *testing.T) {
	m, err := model.LoadAs(testenv.GoldenModel(t, "llama-gqa-untied"), model.Auto)
	if err != nil {
		t.Fatal(err)
	}
	if m.Net.Streamed() {
		t.Error("a model far below StreamThreshold is streamed")
	}
}

// TestStreamedDecoderMatchesResident checks that incremental decoding of a
// streamed VLoRA model (as generate runs it) gives exactly the logits of
// the resident model at every step, and that between steps the streamed
// model holds no block weights: only the KV cache persists.
func TestStreamedDecoderMatchesResident(t *testing.T) {
	vdir := t.TempDir()
	if _, err := convert.Compress(context.Background(), testenv.GoldenModel(t, "llama-gqa-untied"), vdir,
		convert.Options{CompoundSize: 2, Rank: 4, Base: vlora.BaseMean}); err != nil {
		t.Fatal(err)
	}
	res, err := model.LoadAs(vdir, model.Resident)
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.LoadAs(vdir, model.Streamed)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const steps = 5
	rd, err := res.Net.NewDecoder(1, steps)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := st.Net.NewDecoder(1, steps)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []int{1, 7, 3, 9, 2} {
		want, err := rd.Step([]int{id})
		if err != nil {
			t.Fatal(err)
		}
		got, err := sd.Step([]int{id})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("step %d: logits differ from the resident model's", i)
		}
		for l := range st.Net.NumLayers() {
			for _, p := range st.Net.BlockParams(l) {
				if p.Data != nil {
					t.Errorf("step %d: %s holds data between steps", i, p.Name)
				}
			}
		}
	}
}
