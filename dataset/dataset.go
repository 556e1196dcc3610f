// Package dataset holds model inputs: token sets read from files, text
// encoded with a tokenizer and cut into windows (with the positions a
// perplexity scores), image folders preprocessed as a model's
// preprocessor_config.json says, sequences sampled from a model, seeded
// random inputs, and the gathering of items into batches for the forward
// pass.
package dataset

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// Dataset is a set of model inputs: token sequences [N, T] (with optional
// token types) or images [N, C, H, W], with optional integer labels.
type Dataset struct {
	N, T       int
	IDs        []int // N×T, row-major
	TokenTypes []int // N×T or nil
	Pixels     []float32
	C, H, W    int
	Labels     []int // N or nil
	// Score, when not nil, holds for each sequence the span of positions
	// whose tokens are scored as next-token targets (text cut into
	// perplexity windows, see Windows); nil scores every position after
	// the first.
	Score []Span
	// Source says where the data came from, for reports.
	Source string
	// SHA256 is the digest of the data file, when there is one.
	SHA256 string
}

// IsImages reports whether the set holds images.
func (d *Dataset) IsImages() bool { return d.Pixels != nil }

// Batch returns items [i, j) as a transformer input.
func (d *Dataset) Batch(i, j int) *transformer.Input {
	idx := make([]int, j-i)
	for k := range idx {
		idx[k] = i + k
	}
	return d.Gather(idx)
}

// Gather returns the items idx, in that order (repeats allowed), as a
// transformer input holding copies of their values.
func (d *Dataset) Gather(idx []int) *transformer.Input {
	in := &transformer.Input{Batch: len(idx)}
	if d.IsImages() {
		in.Pixels = gatherRows(d.Pixels, d.C*d.H*d.W, idx)
		return in
	}
	in.Seq = d.T
	in.IDs = gatherRows(d.IDs, d.T, idx)
	if d.TokenTypes != nil {
		in.TokenTypes = gatherRows(d.TokenTypes, d.T, idx)
	}
	return in
}

// gatherRows concatenates the rows idx of x, whose rows hold width values.
func gatherRows[T any](x []T, width int, idx []int) []T {
	out := make([]T, 0, len(idx)*width)
	for _, i := range idx {
		out = append(out, x[i*width:(i+1)*width]...)
	}
	return out
}

func (d *Dataset) truncateN(n int) {
	if d.IsImages() {
		d.Pixels = d.Pixels[:n*d.C*d.H*d.W]
	} else {
		d.IDs = d.IDs[:n*d.T]
		if d.TokenTypes != nil {
			d.TokenTypes = d.TokenTypes[:n*d.T]
		}
	}
	if d.Labels != nil {
		d.Labels = d.Labels[:n]
	}
	if d.Score != nil {
		d.Score = d.Score[:n]
	}
	d.N = n
}

func (d *Dataset) truncateT(t int) {
	cut := func(x []int) []int {
		out := make([]int, d.N*t)
		for i := 0; i < d.N; i++ {
			copy(out[i*t:(i+1)*t], x[i*d.T:i*d.T+t])
		}
		return out
	}
	d.IDs = cut(d.IDs)
	if d.TokenTypes != nil {
		d.TokenTypes = cut(d.TokenTypes)
	}
	d.T = t
}

// CheckRange verifies that token ids fit the vocabulary.
func (d *Dataset) CheckRange(vocab, typeVocab int) error {
	for i, v := range d.IDs {
		if v < 0 || (vocab > 0 && v >= vocab) {
			return fmt.Errorf("%s: %w: token %d at position %d outside the vocabulary [0, %d)", d.Source, formats.ErrInvalid, v, i, vocab)
		}
	}
	for i, v := range d.TokenTypes {
		if v < 0 || (typeVocab > 0 && v >= typeVocab) {
			return fmt.Errorf("%s: %w: token type %d at position %d outside [0, %d)", d.Source, formats.ErrInvalid, v, i, typeVocab)
		}
	}
	return nil
}

// Concat returns the items of a followed by those of b, two token sets of
// the same sequence length; the SHA-256 of a file is kept only when b adds
// nothing. Score spans are kept when either set has them: the items of a
// set without spans score every position after the first (Span{1, T}),
// which is what a nil Score means, so text windows join sequences sampled
// or continued by a model. Token types and labels must be present in both
// sets or in neither.
func Concat(a, b *Dataset) (*Dataset, error) {
	if a.IsImages() || b.IsImages() || a.T != b.T {
		return nil, fmt.Errorf("%w: cannot join %s and %s: both must be token sets of one length (%d, %d)", formats.ErrInvalid, a.Source, b.Source, a.T, b.T)
	}
	if (a.TokenTypes == nil) != (b.TokenTypes == nil) {
		return nil, fmt.Errorf("%w: cannot join %s and %s: one has token types, the other does not", formats.ErrInvalid, a.Source, b.Source)
	}
	if (a.Labels == nil) != (b.Labels == nil) {
		return nil, fmt.Errorf("%w: cannot join %s and %s: one has labels, the other does not", formats.ErrInvalid, a.Source, b.Source)
	}
	d := &Dataset{N: a.N + b.N, T: a.T, Source: a.Source + " + " + b.Source}
	d.IDs = append(append(make([]int, 0, len(a.IDs)+len(b.IDs)), a.IDs...), b.IDs...)
	if a.TokenTypes != nil {
		d.TokenTypes = append(append([]int(nil), a.TokenTypes...), b.TokenTypes...)
	}
	if a.Score != nil || b.Score != nil {
		d.Score = append(append(make([]Span, 0, d.N), a.spans()...), b.spans()...)
	}
	if a.Labels != nil {
		d.Labels = append(append([]int(nil), a.Labels...), b.Labels...)
	}
	if b.N == 0 {
		d.SHA256 = a.SHA256
	}
	return d, nil
}

// spans returns the scored span of every item: Score, or Span{1, T} for
// each item when Score is nil.
func (d *Dataset) spans() []Span {
	if d.Score != nil {
		return d.Score
	}
	s := make([]Span, d.N)
	for i := range s {
		s[i] = Span{1, d.T}
	}
	return s
}
