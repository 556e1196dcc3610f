package dataset

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
)

// TestSampleDeterministic checks that sampling is reproducible for a seed,
// starts at bos_token_id and stays in the vocabulary.
func TestSampleDeterministic(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Sample(context.Background(), l, 3, 20, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Sample(context.Background(), l, 3, 20, 5)
	c, _ := Sample(context.Background(), l, 3, 20, 6)
	same := true
	for i := range a.IDs {
		if a.IDs[i] != b.IDs[i] {
			t.Fatalf("same seed, different token at %d", i)
		}
		if a.IDs[i] != c.IDs[i] {
			same = false
		}
		if a.IDs[i] < 0 || a.IDs[i] >= l.Config.VocabSize {
			t.Fatalf("token %d out of vocabulary", a.IDs[i])
		}
	}
	if same {
		t.Error("different seeds gave identical samples")
	}
	bos := l.Config.Int("bos_token_id")
	for i := 0; i < 3; i++ {
		if a.IDs[i*20] != bos {
			t.Errorf("sequence %d starts with %d, want bos %d", i, a.IDs[i*20], bos)
		}
	}
}

// TestGatherAndBatch checks that Gather copies the items asked for, in
// order and with repeats, and that Batch is Gather over a range.
func TestGatherAndBatch(t *testing.T) {
	tokens := &Dataset{N: 3, T: 2, IDs: []int{1, 2, 3, 4, 5, 6}, TokenTypes: []int{0, 1, 0, 1, 1, 1}}
	images := &Dataset{N: 3, C: 1, H: 1, W: 2, Pixels: []float32{1, 2, 3, 4, 5, 6}}
	in := tokens.Gather([]int{2, 0, 2})
	if in.Batch != 3 || in.Seq != 2 || !slices.Equal(in.IDs, []int{5, 6, 1, 2, 5, 6}) || !slices.Equal(in.TokenTypes, []int{1, 1, 0, 1, 1, 1}) {
		t.Errorf("token gather: %+v", in)
	}
	in.IDs[0] = 99
	if tokens.IDs[4] != 5 {
		t.Error("Gather shares memory with the data set")
	}
	if b := tokens.Batch(1, 3); !slices.Equal(b.IDs, []int{3, 4, 5, 6}) || b.Batch != 2 {
		t.Errorf("token batch: %+v", b)
	}
	if p := images.Gather([]int{1}); p.Batch != 1 || !slices.Equal(p.Pixels, []float32{3, 4}) || p.IDs != nil {
		t.Errorf("image gather: %+v", p)
	}
}

func TestSeqLen(t *testing.T) {
	for _, tc := range []struct {
		name                              string
		requested, fallback, maxPositions int
		want                              int
	}{
		{"requested", 40, 0, 0, 40},
		{"fallback", 0, 16, 0, 16},
		{"default", 0, 0, 0, DefaultSeqLen},
		{"clamped", 300, 0, 256, 256},
		{"default clamped", 0, 0, 64, 64},
		{"no limit", 500, 0, 0, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := SeqLen(tc.requested, tc.fallback, tc.maxPositions); got != tc.want {
				t.Errorf("SeqLen(%d, %d, %d) = %d, want %d", tc.requested, tc.fallback, tc.maxPositions, got, tc.want)
			}
		})
	}
}

// TestLoad reads a token file written here, truncated by LoadOptions, and
// rejects unknown file types and malformed contents as invalid input.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens.safetensors")
	w, err := formats.Create(good, nil, []formats.TensorSpec{{Name: "tokens", DType: formats.I32, Shape: []int{3, 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt32("tokens", []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	d, err := Load(context.Background(), good, LoadOptions{Samples: 2, SeqLen: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 2 || d.T != 3 || !slices.Equal(d.IDs, []int{1, 2, 3, 5, 6, 7}) || len(d.SHA256) != 64 {
		t.Errorf("loaded %+v", d)
	}
	// Without an extension the header tells the type.
	bare := filepath.Join(dir, "tokens")
	b, _ := os.ReadFile(good)
	os.WriteFile(bare, b, 0o644)
	if d, err := Load(context.Background(), bare, LoadOptions{}); err != nil || d.N != 3 {
		t.Errorf("safetensors without extension: %v", err)
	}
	bad := filepath.Join(dir, "tokens.csv")
	os.WriteFile(bad, []byte("hello"), 0o644)
	noTokens := filepath.Join(dir, "empty.safetensors")
	w, _ = formats.Create(noTokens, nil, []formats.TensorSpec{{Name: "x", DType: formats.F32, Shape: []int{1}}})
	w.WriteFloat32("x", []float32{1})
	w.Commit()
	for _, p := range []string{bad, noTokens} {
		if _, err := Load(context.Background(), p, LoadOptions{}); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("%s: error %v, want formats.ErrInvalid", filepath.Base(p), err)
		}
	}
}

// TestSampleWithProgress checks that every token position drawn is
// reported, in order, and that the sequences equal Sample's.
func TestSampleWithProgress(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	var got []stage.Progress
	a, err := SampleWithProgress(context.Background(), l, 2, 6, 5, func(p stage.Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d reports for 6 tokens, want 5", len(got))
	}
	for i, p := range got {
		if p.Stage != stage.Sample || p.Done != i+1 || p.Total != 5 {
			t.Errorf("report %d = %+v, want stage %q, %d of 5", i, p, stage.Sample, i+1)
		}
	}
	b, _ := Sample(context.Background(), l, 2, 6, 5)
	if !slices.Equal(a.IDs, b.IDs) {
		t.Errorf("sequences differ from Sample's")
	}
}
