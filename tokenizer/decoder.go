package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder turns the token strings of a sequence into text pieces; the
// pieces of the last decoder are concatenated.
type decoder interface {
	decodeChain(toks []string) []string
}

// decoderSeq applies decoders in order.
type decoderSeq []decoder

func (seq decoderSeq) decodeChain(toks []string) []string {
	for _, d := range seq {
		toks = d.decodeChain(toks)
	}
	return toks
}

// byteLevelDec maps byte-level code points back to bytes and the bytes to
// UTF-8 text (each maximal invalid sequence becomes U+FFFD). A token with a code point
// outside the byte-level alphabet is taken as its own UTF-8 bytes.
type byteLevelDec struct{}

func (byteLevelDec) decodeChain(toks []string) []string {
	var buf []byte
	for _, t := range toks {
		var ok bool
		if buf, ok = byteLevelDecode(buf, t); !ok {
			buf = append(buf, t...)
		}
	}
	return []string{lossyUTF8(buf)}
}

// metaspaceDec turns the replacement character back into spaces; on the
// first token it is dropped instead unless the prepend scheme is "never".
type metaspaceDec struct {
	replacement string
	scheme      prependScheme
}

func (m metaspaceDec) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i == 0 && m.scheme != prependNever {
			out[i] = strings.ReplaceAll(t, m.replacement, "")
		} else {
			out[i] = strings.ReplaceAll(t, m.replacement, " ")
		}
	}
	return out
}

// byteFallbackDec turns runs of <0xNN> tokens into the text they encode;
// a run that is not valid UTF-8 gives one U+FFFD per byte.
type byteFallbackDec struct{}

// parseByteToken returns the byte of a "<0xNN>" token.
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(t[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

func (byteFallbackDec) decodeChain(toks []string) []string {
	out := make([]string, 0, len(toks))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// fuseDec concatenates all tokens into one.
type fuseDec struct{}

func (fuseDec) decodeChain(toks []string) []string { return []string{strings.Join(toks, "")} }

// stripDec removes up to start leading and stop trailing copies of content
// from each token.
type stripDec struct {
	content     rune
	start, stop int
}

func (s stripDec) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		for k := 0; k < s.start; k++ {
			r, size := utf8.DecodeRuneInString(t)
			if size == 0 || r != s.content {
				break
			}
			t = t[size:]
		}
		for k := 0; k < s.stop; k++ {
			r, size := utf8.DecodeLastRuneInString(t)
			if size == 0 || r != s.content {
				break
			}
			t = t[:len(t)-size]
		}
		out[i] = t
	}
	return out
}

// replaceDec replaces a pattern in each token.
type replaceDec struct {
	m       matcher
	content string
}

func (r replaceDec) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = replaceAll(r.m, t, r.content)
	}
	return out
}

// wordPieceDec joins WordPiece tokens: continuation pieces lose their
// prefix, other tokens get a space before them.
type wordPieceDec struct {
	prefix  string
	cleanup bool
}

func (w wordPieceDec) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i != 0 {
			if strings.HasPrefix(t, w.prefix) {
				t = t[len(w.prefix):]
			} else {
				t = " " + t
			}
		}
		if w.cleanup {
			t = cleanupSpaces(t)
		}
		out[i] = t
	}
	return out
}

// cleanupSpaces undoes the spaces that word-level tokenizers put before
// punctuation and English contractions (clean_up_tokenization_spaces),
// replacing in the same order as Hugging Face.
func cleanupSpaces(s string) string {
	for _, p := range [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}
