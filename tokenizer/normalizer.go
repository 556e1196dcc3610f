package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

// normalizerSeq applies normalizers in order.
type normalizerSeq []normalizer

func (seq normalizerSeq) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// unicodeNorm applies a Unicode normalization form (NFC, NFD, NFKC, NFKD).
type unicodeNorm struct{ form norm.Form }

func (u unicodeNorm) normalize(s string) string { return u.form.String(s) }

// lowercase maps every code point to lower case.
type lowercase struct{}

func (lowercase) normalize(s string) string { return toLower(s) }

// replaceNorm replaces every match of a pattern by a fixed string.
type replaceNorm struct {
	m       matcher
	content string
}

func (r replaceNorm) normalize(s string) string { return replaceAll(r.m, s, r.content) }

// replaceAll replaces the matches of m in s by content.
func replaceAll(m matcher, s, content string) string {
	if lit, ok := m.(literalMatcher); ok {
		if lit == "" {
			return s
		}
		return strings.ReplaceAll(s, string(lit), content)
	}
	found := m.find(nil, s)
	if len(found) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, f := range found {
		b.WriteString(s[prev:f[0]])
		b.WriteString(content)
		prev = f[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

// prependNorm prepends a string to non-empty text.
type prependNorm string

func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

// stripNorm removes leading and/or trailing whitespace.
type stripNorm struct{ left, right bool }

func (st stripNorm) normalize(s string) string {
	if st.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if st.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripAccents removes combining marks (use after NFD).
type stripAccents struct{}

func (stripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// bertNorm is BERT's normalizer.
type bertNorm struct {
	cleanText, chineseChars, stripAccents, lowercase bool
}

// isChineseChar reports whether r is in a CJK ideograph block, as BERT
// defines it.
func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// isBertControl is BERT's control test: Unicode control, format and
// unassigned categories, except tab, newline and carriage return.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

func (bn bertNorm) normalize(s string) string {
	if bn.cleanText {
		s = strings.Map(func(r rune) rune {
			switch {
			case r == 0 || r == 0xFFFD || isBertControl(r):
				return -1
			case unicode.IsSpace(r):
				return ' '
			}
			return r
		}, s)
	}
	if bn.chineseChars {
		var b strings.Builder
		for _, r := range s {
			if isChineseChar(r) {
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if bn.stripAccents {
		s = stripAccents{}.normalize(norm.NFD.String(s))
	}
	if bn.lowercase {
		s = toLower(s)
	}
	return s
}
