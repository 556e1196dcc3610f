package dataset

import (
	"context"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
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
