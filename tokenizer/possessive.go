package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// rewritePossessive rewrites the possessive quantifiers of Oniguruma, the
// engine Hugging Face runs split patterns on (X*+, X++, X?+, X{n,m}+), as
// the atomic groups regexp2 understands ((?>X*) ...). Other syntax is left
// as it is.
func rewritePossessive(expr string) string {
	if !strings.Contains(expr, "+") {
		return expr
	}
	var out []byte
	var groups []int // positions in out of the open parentheses
	atom := -1       // position in out where the last atom starts
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '\\':
			start := len(out)
			n := escapeLen(expr[i:])
			out = append(out, expr[i:i+n]...)
			i += n
			atom = start
			continue
		case c == '[':
			start := len(out)
			n := classLen(expr[i:])
			out = append(out, expr[i:i+n]...)
			i += n
			atom = start
			continue
		case c == '(':
			groups = append(groups, len(out))
			out = append(out, c)
			i++
			atom = -1
			continue
		case c == ')':
			out = append(out, c)
			i++
			atom = -1
			if len(groups) > 0 {
				atom = groups[len(groups)-1]
				groups = groups[:len(groups)-1]
			}
			continue
		case c == '|':
			out = append(out, c)
			i++
			atom = -1
			continue
		case c == '*' || c == '+' || c == '?' || c == '{':
			n := 1
			if c == '{' {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					break
				}
				n = end + 1
			}
			if i+n < len(expr) && expr[i+n] == '+' && atom >= 0 {
				quant := expr[i : i+n]
				body := string(out[atom:])
				out = append(out[:atom], "(?>"+body+quant+")"...)
				i += n + 1
				atom = -1
				continue
			}
			out = append(out, expr[i:i+n]...)
			i += n
			if i < len(expr) && (expr[i] == '?') {
				out = append(out, '?') // lazy form
				i++
			}
			atom = -1
			continue
		}
		_, n := utf8.DecodeRuneInString(expr[i:])
		atom = len(out)
		out = append(out, expr[i:i+n]...)
		i += n
	}
	return string(out)
}

// escapeLen returns the length of the escape sequence at the start of s
// (which starts with a backslash).
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case 'p', 'P', 'x', 'u':
		if len(s) > 2 && s[2] == '{' {
			if end := strings.IndexByte(s, '}'); end > 0 {
				return end + 1
			}
		}
		switch s[1] {
		case 'x':
			return min(len(s), 4)
		case 'u':
			return min(len(s), 6)
		}
		return min(len(s), 3) // \pL
	}
	_, n := utf8.DecodeRuneInString(s[1:])
	return 1 + n
}

// classLen returns the length of the character class at the start of s
// (which starts with '['), nested classes and escapes included.
func classLen(s string) int {
	depth := 0
	for i := 0; i < len(s); {
		switch s[i] {
		case '\\':
			i += escapeLen(s[i:])
			continue
		case '[':
			depth++
			if i+1 < len(s) && s[i+1] == '^' {
				i++
			}
			if i+1 < len(s) && s[i+1] == ']' { // literal ] first in a class
				i++
			}
		case ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(s)
}
