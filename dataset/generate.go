package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
	"golang.org/x/sync/errgroup"
)

// Sample draws n sequences of length t from the causal LM m by ancestral
// sampling at temperature 1, starting from the config's bos_token_id (0 when
// absent). The same seed gives the same sequences. Causal LMs are decoded
// incrementally with a key/value cache; a model the decoder does not support
// is run on the whole prefix at every position instead.
func Sample(ctx context.Context, m *model.Model, n, t int, seed uint64) (*Dataset, error) {
	return SampleWithProgress(ctx, m, n, t, seed, nil)
}

// SampleWithProgress is Sample that reports each token position drawn to
// progress (stage stage.Sample, t−1 positions), when progress is not nil.
func SampleWithProgress(ctx context.Context, m *model.Model, n, t int, seed uint64, progress stage.ProgressFunc) (*Dataset, error) {
	if n <= 0 || t <= 0 {
		return nil, fmt.Errorf("%w: cannot sample %d sequences of %d tokens", formats.ErrInvalid, n, t)
	}
	what := fmt.Sprintf("%d sampled sequences of %d tokens", n, t)
	if err := CheckBudget(what, SampleBytes(m.Config, n, t)); err != nil {
		return nil, err
	}
	bos := m.Config.Int("bos_token_id")
	ids := make([]int, n*t)
	for i := 0; i < n; i++ {
		ids[i*t] = bos
	}
	if err := complete(ctx, m, ids, n, t, 1, seed, progress); err != nil {
		return nil, err
	}
	return &Dataset{N: n, T: t, IDs: ids, Source: fmt.Sprintf("%d sequences of %d tokens sampled from the original model (seed %d)", n, t, seed)}, nil
}

// Continue draws n sequences of from's length from the causal LM m, each
// the first keep tokens of a sequence of from followed by the model's own
// continuation, sampled at temperature 1. The sequences of from are taken
// in a seeded random order (cycling when n exceeds from.N), so the same
// seed gives the same sequences. Mixed with from, the continuations give
// distillation more inputs from the original's own distribution than a
// small data set holds, in its domain (the prefixes).
func Continue(ctx context.Context, m *model.Model, from *Dataset, n, keep int, seed uint64, progress stage.ProgressFunc) (*Dataset, error) {
	if from == nil || from.IsImages() || from.N == 0 {
		return nil, fmt.Errorf("%w: continuations need token sequences to start from", formats.ErrInvalid)
	}
	t := from.T
	if n <= 0 || keep < 1 || keep >= t {
		return nil, fmt.Errorf("%w: cannot continue %d sequences after %d of their %d tokens (need 1 ≤ prefix < length)", formats.ErrInvalid, n, keep, t)
	}
	// Sequences are drawn in chunks of a size that depends only on the
	// model and t (so a seed gives the same sequences on any machine), one
	// decoder each, run on up to continueWorkers goroutines whose key/value
	// caches fit the budget together.
	chunk := min(continueChunk, n)
	for chunk > 1 && continueWorkers*SampleBytes(m.Config, chunk, t) > MaxBudgetBytes {
		chunk /= 2
	}
	workers := min(runtime.GOMAXPROCS(0), continueWorkers, (n+chunk-1)/chunk)
	what := fmt.Sprintf("continued sequences of %d tokens, %d at a time on %d goroutines", t, chunk, workers)
	if err := CheckBudget(what, float64(workers)*SampleBytes(m.Config, chunk, t)+TokensBytes(n, t)); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0xc0417))
	ids := make([]int, n*t)
	var order []int
	for i := 0; i < n; i++ {
		if i%from.N == 0 {
			order = rng.Perm(from.N)
		}
		src := order[i%from.N]
		copy(ids[i*t:i*t+keep], from.IDs[src*t:src*t+keep])
	}
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for c := 0; c < n; c += chunk {
		k := min(chunk, n-c)
		var report stage.ProgressFunc
		if progress != nil {
			report = func(p stage.Progress) {
				if p.Done < p.Total {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				done += k
				progress(stage.Progress{Stage: p.Stage, Done: done, Total: n})
			}
		}
		g.Go(func() error {
			return complete(gctx, m, ids[c*t:(c+k)*t], k, t, keep, seed+uint64(c), report)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	src := fmt.Sprintf("%d continuations by the original model (seed %d) of the first %d tokens of %s", n, seed, keep, from.Source)
	return &Dataset{N: n, T: t, IDs: ids, Source: src}, nil
}

// continueChunk is the most sequences one decoder of Continue runs at
// once, and continueWorkers the most decoders run at once.
const (
	continueChunk   = 256
	continueWorkers = 4
)

// complete fills positions keep…t−1 of the n sequences of t tokens in ids
// by ancestral sampling from m, given positions 0…keep−1. Causal LMs are
// decoded incrementally with a key/value cache; a model the decoder does
// not support is run on the whole prefix at every position instead.
func complete(ctx context.Context, m *model.Model, ids []int, n, t, keep int, seed uint64, progress stage.ProgressFunc) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// next returns the [n, vocab] logits that follow the first pos tokens
	// of every sequence.
	var next func(pos int) ([]float32, error)
	dec, err := m.Net.NewDecoder(n, t)
	cached := err == nil // the decoder must see every given token to build its cache
	switch {
	case cached:
		col := make([]int, n)
		next = func(pos int) ([]float32, error) {
			for i := range col {
				col[i] = ids[i*t+pos-1]
			}
			return dec.Step(col)
		}
	case errors.Is(err, transformer.ErrNotCausal):
		cur := make([]int, 0, n*t)
		next = func(pos int) ([]float32, error) {
			cur = cur[:0]
			for i := 0; i < n; i++ {
				cur = append(cur, ids[i*t:i*t+pos]...)
			}
			out, err := m.Net.Forward(&transformer.Input{Batch: n, Seq: pos, IDs: cur}, transformer.Options{})
			if err != nil {
				return nil, err
			}
			if len(out.LogitsShape) != 3 {
				return nil, fmt.Errorf("%w: the model gives no next-token logits", formats.ErrInvalid)
			}
			v := out.LogitsShape[2]
			last := make([]float32, n*v)
			for i := 0; i < n; i++ {
				copy(last[i*v:(i+1)*v], out.Logits[(i*pos+pos-1)*v:(i*pos+pos)*v])
			}
			return last, nil
		}
	default:
		return fmt.Errorf("sampling %d×%d tokens: %w", n, t, err)
	}
	for pos := 1; pos < t; pos++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if pos < keep {
			if cached {
				if _, err := next(pos); err != nil {
					return err
				}
			}
			continue
		}
		logits, err := next(pos)
		if err != nil {
			return err
		}
		v := len(logits) / n
		for i := 0; i < n; i++ {
			ids[i*t+pos] = sample(logits[i*v:(i+1)*v], rng)
		}
		if progress != nil {
			progress(stage.Progress{Stage: stage.Sample, Done: pos - keep + 1, Total: t - keep})
		}
	}
	return nil
}

// sample draws an index from softmax(logits).
func sample(logits []float32, rng *rand.Rand) int {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	u := rng.Float64() * sum
	for i, v := range logits {
		u -= math.Exp(float64(v) - mx)
		if u <= 0 {
			return i
		}
	}
	return len(logits) - 1
}

// Random draws n seeded random inputs for encoders and image models:
// uniform token ids (token types 0) of length t, or standard-normal images.
func Random(cfg *formats.Config, n, t int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	if cfg.ModelType == "vit" || cfg.Int("image_size") > 0 {
		c, s := max(cfg.Int("num_channels"), 1), cfg.Int("image_size")
		px := make([]float32, n*c*s*s)
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		return &Dataset{N: n, C: c, H: s, W: s, Pixels: px,
			Source: fmt.Sprintf("%d random normal images (seed %d)", n, seed)}
	}
	ids := make([]int, n*t)
	for i := range ids {
		ids[i] = rng.IntN(max(cfg.VocabSize, 1))
	}
	return &Dataset{N: n, T: t, IDs: ids, Source: fmt.Sprintf("%d random token sequences of length %d (seed %d)", n, t, seed)}
}

// DefaultSeqLen is the length of generated sequences when none is asked for.
const DefaultSeqLen = 128

// SeqLen returns the length of generated sequences: requested when
// positive, otherwise fallback (DefaultSeqLen when fallback is not
// positive), clamped to the model's maxPositions learned positions when
// that is positive.
func SeqLen(requested, fallback, maxPositions int) int {
	t := requested
	if t <= 0 {
		t = fallback
	}
	if t <= 0 {
		t = DefaultSeqLen
	}
	if maxPositions > 0 && t > maxPositions {
		t = maxPositions
	}
	return t
}
