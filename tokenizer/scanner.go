package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Split patterns found in the tokenizer.json files of the GPT-2, Llama 3 and
// Qwen families. They need look-ahead, so Go's regexp cannot run them; a
// scanner written for them replaces the general regexp2 engine, which is an
// order of magnitude slower. scanner_test.go checks that both agree.
const (
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// patternCL100K is the GPT-4 pattern used by Llama 3.
	patternCL100K = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternQwen is patternCL100K with single digits, as Qwen 2 and 3 use it.
	patternQwen = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// knownScanner returns the scanner for a well-known pattern.
func knownScanner(expr string) (matcher, bool) {
	switch expr {
	case patternGPT2:
		return gpt2Scanner{}, true
	case patternCL100K:
		return cl100kScanner{maxDigits: 3}, true
	case patternQwen:
		return cl100kScanner{maxDigits: 1}, true
	case patternO200K:
		return o200kScanner{}, true
	}
	return nil, false
}

// Character classes of the split patterns.
const (
	clsOther  = iota // [^\s\p{L}\p{N}]
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = classOf(rune(c))
	}
	return t
}()

func classOf(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// classAt returns the class and byte length of the code point at s[i].
// Invalid UTF-8 bytes count as one-byte clsOther code points.
func classAt(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return clsOther, n
	}
	return classOf(r), n
}

// scanClass returns the end of the run of class cls starting at i, stopping
// after max code points when max > 0.
func scanClass(s string, i int, cls uint8, max int) int {
	for k := 0; i < len(s) && (max <= 0 || k < max); k++ {
		c, n := classAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of the contraction suffix ('s, 't, 're,
// 've, 'm, 'll, 'd) starting at s[i], just after the apostrophe, or 0.
// With fold, letters match in either case, and s also matches U+017F as in
// Unicode simple case folding.
func contraction(s string, i int, fold bool) int {
	at := func(k int) byte {
		if i+k >= len(s) {
			return 0
		}
		c := s[i+k]
		if fold && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	switch at(0) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if at(1) == 'e' {
			return 2
		}
	case 'l':
		if at(1) == 'l' {
			return 2
		}
	case 0xC5: // U+017F LATIN SMALL LETTER LONG S is C5 BF
		if fold && i+1 < len(s) && s[i+1] == 0xBF {
			return 2
		}
	}
	return 0
}

// scanSpace handles the whitespace alternatives shared by the patterns,
// \s+(?!\S)|\s+, optionally preceded by \s*[\r\n]+ (newline).
func scanSpace(s string, i int, newline bool) int {
	end, last, lastNL := i, i, -1
	for end < len(s) {
		c, n := classAt(s, end)
		if c != clsSpace {
			break
		}
		if s[end] == '\r' || s[end] == '\n' {
			lastNL = end
		}
		last = end
		end += n
	}
	if newline && lastNL >= 0 {
		return lastNL + 1
	}
	if end == len(s) || last == i {
		return end
	}
	return last
}

// scanSymbols matches ` ?[^\s\p{L}\p{N}]+[tail]*` at i, tail being a set
// of ASCII characters.
func scanSymbols(s string, i int, tail string) (int, bool) {
	j := i
	if s[i] == ' ' {
		j++
	}
	if j >= len(s) {
		return 0, false
	}
	if c, _ := classAt(s, j); c != clsOther {
		return 0, false
	}
	j = scanClass(s, j, clsOther, 0)
	for j < len(s) && strings.IndexByte(tail, s[j]) >= 0 {
		j++
	}
	return j, true
}

// gpt2Scanner runs patternGPT2.
type gpt2Scanner struct{}

func (gpt2Scanner) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		end := gpt2Match(s, i)
		dst = append(dst, [2]int{i, end})
		i = end
	}
	return dst
}

func gpt2Match(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, false); n > 0 {
			return i + 1 + n
		}
	}
	j := i
	if s[i] == ' ' {
		j++
	}
	if j < len(s) {
		if c, _ := classAt(s, j); c != clsSpace {
			return scanClass(s, j, c, 0)
		}
	}
	return scanSpace(s, i, false)
}

// cl100kScanner runs patternCL100K (maxDigits 3) and patternQwen (1).
type cl100kScanner struct{ maxDigits int }

func (sc cl100kScanner) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		end := sc.match(s, i)
		dst = append(dst, [2]int{i, end})
		i = end
	}
	return dst
}

func (sc cl100kScanner) match(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, true); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	switch {
	case c == clsLetter:
		return scanClass(s, i, clsLetter, 0)
	case c == clsNumber:
		return scanClass(s, i, clsNumber, sc.maxDigits)
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if s[i] != '\r' && s[i] != '\n' && i+n < len(s) {
		if c2, _ := classAt(s, i+n); c2 == clsLetter {
			return scanClass(s, i+n, clsLetter, 0)
		}
	}
	if end, ok := scanSymbols(s, i, "\r\n"); ok {
		return end
	}
	return scanSpace(s, i, true)
}
