package tokenizer

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"

	"github.com/vlora-convert/vlora-convert/formats"
)

// span is a half-open byte range [start, end) of a string; match tells
// whether the range matched the splitting pattern.
type span struct {
	start, end int
	match      bool
}

// matcher finds the non-overlapping matches of a splitting pattern.
type matcher interface {
	// find appends the [start, end) byte ranges of the successive matches
	// in s to dst and returns it.
	find(dst [][2]int, s string) [][2]int
}

// literalMatcher matches a fixed string.
type literalMatcher string

func (m literalMatcher) find(dst [][2]int, s string) [][2]int {
	if m == "" {
		return dst
	}
	for off := 0; ; {
		i := strings.Index(s[off:], string(m))
		if i < 0 {
			return dst
		}
		dst = append(dst, [2]int{off + i, off + i + len(m)})
		off += i + len(m)
	}
}

// runeMatcher matches every single code point for which the predicate holds.
type runeMatcher func(r rune) bool

func (m runeMatcher) find(dst [][2]int, s string) [][2]int {
	for i, r := range s {
		if m(r) {
			dst = append(dst, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

// regexMatcher runs a general regular expression (backtracking engine, so
// look-around works). Each search for a match may take matchTimeout; a
// search that runs out of it, or any other failure of the engine, stops
// the encoding with an encodeAbort (see EncodeContext).
type regexMatcher struct {
	re   *regexp2.Regexp
	expr string // the pattern as the file gives it
}

func (m regexMatcher) find(dst [][2]int, s string) [][2]int {
	idx, err := m.re.FindAllStringIndex(s, -1)
	if err != nil {
		// The engine's message quotes the whole input; keep it out.
		msg := "the regex engine failed"
		if strings.Contains(err.Error(), "timeout") {
			msg = fmt.Sprintf("a match took longer than %v (catastrophic backtracking?)", m.re.MatchTimeout)
		}
		panic(encodeAbort{fmt.Errorf("%w: regex %s on a piece of %d bytes: %s", ErrPattern, quoteShort(m.expr), len(s), msg)})
	}
	for _, p := range idx {
		dst = append(dst, [2]int{p[0], p[1]})
	}
	return dst
}

// ErrPattern reports a regular expression of the tokenizer that could not
// be matched within MatchTimeout; it wraps formats.ErrInvalid, since the
// tokenizer file is at fault.
var ErrPattern = fmt.Errorf("%w: tokenizer pattern", formats.ErrInvalid)

// encodeAbort carries an error that ends an encoding (a regexMatcher's,
// or the context's, see checkCtx) up to EncodeContext, which recovers it;
// it never leaves the package.
type encodeAbort struct{ err error }

// compilePattern returns a matcher for a regular expression from a
// tokenizer.json file: a hand-written scanner when the pattern is one of the
// well-known split patterns, the regexp2 engine with the matchTimeout
// budget otherwise.
func compilePattern(expr string) (matcher, error) {
	if sc, ok := knownScanner(expr); ok {
		return sc, nil
	}
	re, err := regexp2.Compile(rewritePossessive(expr), regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %s: %v", quoteShort(expr), err)
	}
	re.MatchTimeout = matchTimeout
	return regexMatcher{re, expr}, nil
}

// splitSpans covers s with the matches of m and the gaps between them, in
// order; an empty s gives one empty non-match. buf is scratch space for
// the matches.
func splitSpans(ctx context.Context, m matcher, s string, invert bool, buf *[][2]int) []span {
	if s == "" {
		return []span{{0, 0, invert}}
	}
	if cap(*buf) == 0 {
		*buf = make([][2]int, 0, len(s)/4+1) // about one match per word
	}
	found := findCtx(ctx, m, (*buf)[:0], s)
	*buf = found
	out := make([]span, 0, 2*len(found)+1)
	prev := 0
	for k, f := range found {
		if k%(1<<16) == 0 {
			checkCtx(ctx)
		}
		if f[0] != prev {
			out = append(out, span{prev, f[0], invert})
		}
		out = append(out, span{f[0], f[1], !invert})
		prev = f[1]
	}
	if prev != len(s) {
		out = append(out, span{prev, len(s), invert})
	}
	return out
}

// findLongPiece is the length of a piece from which on findCtx scans it
// on its own goroutine, so that a cancellation need not wait for the scan
// (seconds for tens of megabytes).
const findLongPiece = 1 << 20

// findCtx is m.find(dst, s), which stops the encoding (see checkCtx) as
// soon as ctx is done, rather than when the scan ends, for a long s; the
// abandoned scan finishes on its goroutine and is dropped. An encodeAbort
// of the scan itself (a regular expression out of time) is passed on.
func findCtx(ctx context.Context, m matcher, dst [][2]int, s string) [][2]int {
	if ctx == nil || ctx.Done() == nil || len(s) < findLongPiece {
		return m.find(dst, s)
	}
	type result struct {
		found [][2]int
		abort any
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{abort: r}
			}
		}()
		done <- result{found: m.find(dst, s)}
	}()
	select {
	case r := <-done:
		if r.abort != nil {
			panic(r.abort)
		}
		return r.found
	case <-ctx.Done():
		panic(encodeAbort{ctx.Err()})
	}
}

// behavior says what a split does with the matched ranges.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func parseBehavior(s string) (behavior, error) {
	switch s {
	case "Removed":
		return removed, nil
	case "Isolated", "":
		return isolated, nil
	case "MergedWithPrevious":
		return mergedWithPrevious, nil
	case "MergedWithNext":
		return mergedWithNext, nil
	case "Contiguous":
		return contiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// applyBehavior turns the spans of one string into the ranges of its
// pieces, following the Hugging Face rules, and drops empty pieces.
func applyBehavior(spans []span, b behavior) []span {
	var out []span
	switch b {
	case removed:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case isolated:
		out = spans
	case mergedWithPrevious:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	case mergedWithNext:
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case contiguous:
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	}
	n := 0
	for _, sp := range out {
		if sp.end > sp.start {
			out[n] = sp
			n++
		}
	}
	return out[:n]
}

// splitter is the Split pre-tokenizer and the building block of the other
// splitting pre-tokenizers.
type splitter struct {
	m        matcher
	behavior behavior
	invert   bool
}

func (sp splitter) preTokenize(ctx context.Context, pieces []piece) []piece {
	var out []piece
	var buf [][2]int
	for k, p := range pieces {
		if k%cancelCheckPieces == 0 || len(p.s) > 1<<20 {
			checkCtx(ctx)
		}
		spans := applyBehavior(splitSpans(ctx, sp.m, p.s, sp.invert, &buf), sp.behavior)
		if out == nil {
			out = make([]piece, 0, len(spans)+len(pieces)-1)
		}
		for i, s := range spans {
			if i%(1<<16) == 1<<16-1 {
				checkCtx(ctx)
			}
			out = append(out, piece{s: p.s[s.start:s.end], first: p.first && i == 0 && s.start == 0})
		}
	}
	return out
}
