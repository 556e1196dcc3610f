package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// patternO200K is the split pattern of GPT-4o and gpt-oss (o200k): words
// split at case changes, with the contraction suffix attached.
const patternO200K = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Letter classes of patternO200K, as bits.
const (
	o2Upper  = 1 << iota // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	o2Lower              // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	o2Prefix             // [^\r\n\p{L}\p{N}]
)

// o200kClass returns the letter-class bits of the code point at s[i] and
// its length.
func o200kClass(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		switch {
		case c >= 'A' && c <= 'Z':
			return o2Upper, 1
		case c >= 'a' && c <= 'z':
			return o2Lower, 1
		case c == '\r' || c == '\n' || (c >= '0' && c <= '9'):
			return 0, 1
		}
		return o2Prefix, 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 {
		return o2Prefix, 1
	}
	switch {
	case unicode.In(r, unicode.Lm, unicode.Lo, unicode.M):
		cls := uint8(o2Upper | o2Lower)
		if unicode.Is(unicode.M, r) {
			cls |= o2Prefix // a mark is not \p{L}
		}
		return cls, n
	case unicode.In(r, unicode.Lu, unicode.Lt):
		return o2Upper, n
	case unicode.Is(unicode.Ll, r):
		return o2Lower, n
	case unicode.IsLetter(r) || unicode.IsNumber(r):
		return 0, n
	}
	return o2Prefix, n
}

// o200kRun returns the end of the run of code points with class bit cls
// starting at i.
func o200kRun(s string, i int, cls uint8) int {
	for i < len(s) {
		c, n := o200kClass(s, i)
		if c&cls == 0 {
			break
		}
		i += n
	}
	return i
}

// o200kScanner runs patternO200K.
type o200kScanner struct{}

func (o200kScanner) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		end := o200kMatch(s, i)
		if end <= i { // no alternative matches here: a gap of one code point
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
			continue
		}
		dst = append(dst, [2]int{i, end})
		i = end
	}
	return dst
}

// o200kWord runs the first two alternatives from i: an optional prefix,
// then upper* lower+ or upper+ lower*, then an optional contraction. It
// returns -1 when neither matches.
func o200kWord(s string, i int) int {
	starts := [2]int{-1, i}
	if c, n := o200kClass(s, i); c&o2Prefix != 0 {
		starts[0] = i + n
	}
	// Alternative 1, backtracking like the regex: prefix taken first, then
	// the longest upper run that leaves a lower letter after it.
	for _, p := range starts {
		if p < 0 || p >= len(s) {
			continue
		}
		for k := o200kRun(s, p, o2Upper); ; {
			if k < len(s) {
				if c, _ := o200kClass(s, k); c&o2Lower != 0 {
					end := o200kRun(s, k, o2Lower)
					return end + contractionAt(s, end)
				}
			}
			if k == p {
				break
			}
			_, n := utf8.DecodeLastRuneInString(s[p:k])
			k -= n
		}
	}
	// Alternative 2.
	for _, p := range starts {
		if p < 0 || p >= len(s) {
			continue
		}
		if k := o200kRun(s, p, o2Upper); k > p {
			end := o200kRun(s, k, o2Lower)
			return end + contractionAt(s, end)
		}
	}
	return -1
}

// contractionAt returns the length of a case-insensitive contraction ('s,
// 't, 're, 've, 'm, 'll, 'd) at s[i], or 0.
func contractionAt(s string, i int) int {
	if i < len(s) && s[i] == '\'' {
		if n := contraction(s, i+1, true); n > 0 {
			return 1 + n
		}
	}
	return 0
}

func o200kMatch(s string, i int) int {
	if end := o200kWord(s, i); end >= 0 {
		return end
	}
	c, n := classAt(s, i)
	if c == clsNumber {
		return scanClass(s, i, clsNumber, 3)
	}
	if end, ok := scanSymbols(s, i, "\r\n/"); ok {
		return end
	}
	if c == clsSpace {
		return scanSpace(s, i, true)
	}
	return i + n
}
