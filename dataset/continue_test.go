package dataset

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// prefixSet returns n seeded random sequences of t tokens for the golden
// llama model.
func prefixSet(l *model.Model, n, t int) *Dataset {
	return Random(l.Config, n, t, 3)
}

// TestContinueKeepsPrefixes checks that every continuation starts with the
// first keep tokens of a source sequence, that every source is used once
// before any is used twice, and that the same seed gives the same set while
// another seed does not.
func TestContinueKeepsPrefixes(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	from := prefixSet(l, 5, 12)
	for _, tc := range []struct{ n, keep int }{{3, 3}, {5, 4}, {12, 11}} {
		a, err := Continue(context.Background(), l, from, tc.n, tc.keep, 9, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Continue(context.Background(), l, from, tc.n, tc.keep, 9, nil)
		c, _ := Continue(context.Background(), l, from, tc.n, tc.keep, 10, nil)
		if a.N != tc.n || a.T != from.T || !slices.Equal(a.IDs, b.IDs) {
			t.Fatalf("n=%d keep=%d: got %d×%d, same seed equal %v", tc.n, tc.keep, a.N, a.T, slices.Equal(a.IDs, b.IDs))
		}
		if slices.Equal(a.IDs, c.IDs) {
			t.Errorf("n=%d keep=%d: another seed gave the same continuations", tc.n, tc.keep)
		}
		used := map[int]int{}
		for i := range a.N {
			src := -1
			for j := range from.N {
				if slices.Equal(a.IDs[i*a.T:i*a.T+tc.keep], from.IDs[j*a.T:j*a.T+tc.keep]) {
					src = j
				}
			}
			if src < 0 {
				t.Fatalf("n=%d keep=%d: continuation %d starts with no source prefix", tc.n, tc.keep, i)
			}
			used[src]++
			for _, id := range a.IDs[i*a.T : (i+1)*a.T] {
				if id < 0 || id >= l.Config.VocabSize {
					t.Fatalf("token %d out of the vocabulary", id)
				}
			}
		}
		lo, hi := tc.n/from.N, (tc.n+from.N-1)/from.N
		for src, k := range used {
			if k < lo || k > hi {
				t.Errorf("n=%d: source %d used %d times, want %d…%d", tc.n, src, k, lo, hi)
			}
		}
	}
}

// TestContinueConditionsOnPrefix checks that the cached decoder conditions
// on the whole given prefix: with one position left to sample, each token
// is the one the same random stream draws from the full forward pass's
// last-position logits.
func TestContinueConditionsOnPrefix(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	const n, T, seed = 4, 10, 21
	all := prefixSet(l, n, T)
	v := l.Config.VocabSize
	for i := range n {
		// One sequence is one chunk, drawn from complete's stream for seed.
		from := &Dataset{N: 1, T: T, IDs: all.IDs[i*T : (i+1)*T]}
		got, err := Continue(context.Background(), l, from, 1, T-1, seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.Net.Forward(&transformer.Input{Batch: 1, Seq: T - 1, IDs: got.IDs[:T-1]}, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		if want := sample(out.Logits[(T-2)*v:(T-1)*v], rng); got.IDs[T-1] != want {
			t.Errorf("sequence %d: sampled %d, the full pass's logits give %d", i, got.IDs[T-1], want)
		}
	}
}

// TestContinueChunks checks that more sequences than one chunk decodes are
// all filled and that the progress reaches the total.
func TestContinueChunks(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	from := prefixSet(l, 7, 6)
	n := continueChunk + 3
	var last int
	d, err := Continue(context.Background(), l, from, n, 2, 1, func(p stage.Progress) { last = p.Done })
	if err != nil {
		t.Fatal(err)
	}
	if d.N != n || last != n {
		t.Fatalf("got %d sequences, progress %d; want %d", d.N, last, n)
	}
}

// TestContinueRejects checks the inputs Continue refuses.
func TestContinueRejects(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	from := prefixSet(l, 2, 6)
	for _, tc := range []struct {
		name    string
		from    *Dataset
		n, keep int
	}{
		{"no sequences", &Dataset{T: 6}, 1, 2},
		{"nil set", nil, 1, 2},
		{"zero continuations", from, 0, 2},
		{"empty prefix", from, 1, 0},
		{"prefix as long as the sequence", from, 1, 6},
		{"images", &Dataset{N: 1, Pixels: []float32{0}, C: 1, H: 1, W: 1}, 1, 1},
	} {
		if _, err := Continue(context.Background(), l, tc.from, tc.n, tc.keep, 1, nil); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
		}
	}
}

// TestConcat checks that Concat appends items, fills the spans of a set
// without them, and refuses sets that do not share a shape, token types or
// labels.
func TestConcat(t *testing.T) {
	a := &Dataset{N: 2, T: 3, IDs: []int{1, 2, 3, 4, 5, 6}, Source: "a", SHA256: "x"}
	b := &Dataset{N: 1, T: 3, IDs: []int{7, 8, 9}, Source: "b"}
	d, err := Concat(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 3 || !slices.Equal(d.IDs, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}) || d.Source != "a + b" || d.SHA256 != "" {
		t.Errorf("got %+v", d)
	}
	// Text windows (with spans) join sequences without: those score every
	// position after the first.
	w := &Dataset{N: 1, T: 3, IDs: []int{1, 2, 3}, Score: []Span{{2, 3}}, Source: "w"}
	for _, tc := range []struct {
		x, y *Dataset
		want []Span
	}{
		{w, b, []Span{{2, 3}, {1, 3}}},
		{b, w, []Span{{1, 3}, {2, 3}}},
	} {
		d, err := Concat(tc.x, tc.y)
		if err != nil {
			t.Fatal(err)
		}
		if d.N != 2 || !slices.Equal(d.Score, tc.want) {
			t.Errorf("Concat(%s, %s): N %d, Score %v, want %v", tc.x.Source, tc.y.Source, d.N, d.Score, tc.want)
		}
	}
	for _, bad := range []*Dataset{
		{N: 1, T: 2, IDs: []int{1, 2}},
		{N: 1, T: 3, IDs: []int{1, 2, 3}, TokenTypes: []int{0, 0, 0}},
		{N: 1, T: 3, IDs: []int{1, 2, 3}, Labels: []int{0}},
		{N: 1, Pixels: []float32{0}, C: 1, H: 1, W: 1},
	} {
		if _, err := Concat(a, bad); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("joining %+v: err %v, want ErrInvalid", bad, err)
		}
	}
}

// TestContinueSameOnAnyCores checks that the continuations depend on the
// seed only, not on how many goroutines decode them.
func TestContinueSameOnAnyCores(t *testing.T) {
	l, err := model.Load(testenv.GoldenModel(t, "llama-gqa-untied"))
	if err != nil {
		t.Fatal(err)
	}
	from := prefixSet(l, 5, 6)
	var got [][]int
	for _, procs := range []int{1, 4} {
		prev := runtime.GOMAXPROCS(procs)
		d, err := Continue(context.Background(), l, from, continueChunk+5, 2, 3, nil)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.IDs)
	}
	if !slices.Equal(got[0], got[1]) {
		t.Error("continuations differ between 1 and 4 goroutines")
	}
}
