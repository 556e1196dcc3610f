package tokenizer

import (
	"context"
	"strings"
	"unicode"
)

// piece is a part of the text on its way to the model. first marks the
// piece that starts the input text (Metaspace's "first" prepend scheme).
type piece struct {
	s     string
	first bool
}

// preTokenizer cuts pieces into smaller pieces (the "words" the model sees)
// and may rewrite them.
type preTokenizer interface {
	// preTokenize may stop the encoding with an encodeAbort when ctx is
	// done (see checkCtx); a nil ctx is never done.
	preTokenize(ctx context.Context, pieces []piece) []piece
}

// preTokenizerSeq applies pre-tokenizers in order.
type preTokenizerSeq []preTokenizer

func (seq preTokenizerSeq) preTokenize(ctx context.Context, pieces []piece) []piece {
	for _, p := range seq {
		checkCtx(ctx)
		pieces = p.preTokenize(ctx, pieces)
	}
	return pieces
}

// byteLevelPre is the ByteLevel pre-tokenizer: optional prefix space,
// optional GPT-2 split, then the byte-to-code-point mapping.
type byteLevelPre struct {
	addPrefixSpace bool
	split          *splitter // nil unless use_regex
}

func (b byteLevelPre) preTokenize(ctx context.Context, pieces []piece) []piece {
	if b.addPrefixSpace {
		for i, p := range pieces {
			if !strings.HasPrefix(p.s, " ") {
				pieces[i].s = " " + p.s
			}
		}
	}
	if b.split != nil {
		pieces = b.split.preTokenize(ctx, pieces)
	}
	checkCtx(ctx)
	// Map all pieces into one string, then cut it: one allocation.
	n := 0
	for _, p := range pieces {
		n += byteLevelLen(p.s)
	}
	var sb strings.Builder
	sb.Grow(n)
	ends := make([]int, len(pieces))
	for i, p := range pieces {
		if i%(1<<16) == 0 {
			checkCtx(ctx)
		}
		for k := 0; k < len(p.s); k++ {
			sb.WriteString(byteToString[p.s[k]])
		}
		ends[i] = sb.Len()
	}
	all, start := sb.String(), 0
	for i := range pieces {
		pieces[i].s = all[start:ends[i]]
		start = ends[i]
	}
	return pieces
}

// prependScheme says where Metaspace adds the replacement character.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePre is the Metaspace pre-tokenizer: spaces become the
// replacement character (▁), which is prepended as the scheme says, and the
// pieces are optionally split before each replacement character.
type metaspacePre struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func (m metaspacePre) preTokenize(ctx context.Context, pieces []piece) []piece {
	for i, p := range pieces {
		s := strings.ReplaceAll(p.s, " ", m.replacement)
		if (m.scheme == prependAlways || (m.scheme == prependFirst && p.first)) && !strings.HasPrefix(s, m.replacement) {
			s = m.replacement + s
		}
		pieces[i].s = s
	}
	if !m.split {
		return pieces
	}
	return splitter{m: literalMatcher(m.replacement), behavior: mergedWithNext}.preTokenize(ctx, pieces)
}

// isBertPunct is BERT's punctuation test: ASCII punctuation or a Unicode
// punctuation category.
func isBertPunct(r rune) bool {
	if r < 128 {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// isWordRune approximates the Unicode \w class: alphabetic, marks, decimal
// digits, connector punctuation and joiners.
func isWordRune(r rune) bool {
	if r < 128 {
		return r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// wordMatcher matches \w+|[^\w\s]+ (the Whitespace pre-tokenizer).
type wordMatcher struct{}

func (wordMatcher) find(dst [][2]int, s string) [][2]int {
	start, kind := -1, 0 // kind 1: word, 2: neither word nor space
	for i, r := range s {
		k := 2
		if isWordRune(r) {
			k = 1
		} else if unicode.IsSpace(r) {
			k = 0
		}
		if k != kind {
			if kind != 0 {
				dst = append(dst, [2]int{start, i})
			}
			start, kind = i, k
		}
	}
	if kind != 0 {
		dst = append(dst, [2]int{start, len(s)})
	}
	return dst
}

// newWhitespacePre splits into runs of word characters and runs of other
// non-space characters.
func newWhitespacePre() preTokenizer {
	return splitter{m: wordMatcher{}, behavior: removed, invert: true}
}

// newWhitespaceSplitPre splits on whitespace and drops it.
func newWhitespaceSplitPre() preTokenizer {
	return splitter{m: runeMatcher(unicode.IsSpace), behavior: removed}
}

// newBertPre splits on whitespace (dropped) and isolates punctuation.
func newBertPre() preTokenizer {
	return preTokenizerSeq{newWhitespaceSplitPre(), splitter{m: runeMatcher(isBertPunct), behavior: isolated}}
}

// newDigitsPre isolates digits, one by one or in runs.
func newDigitsPre(individual bool) preTokenizer {
	if individual {
		return splitter{m: runeMatcher(unicode.IsNumber), behavior: isolated}
	}
	return splitter{m: runeMatcher(unicode.IsNumber), behavior: contiguous}
}
