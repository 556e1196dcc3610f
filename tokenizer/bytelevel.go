package tokenizer

import "unicode/utf8"

// byteToRune is GPT-2's bytes_to_unicode table: every byte maps to a
// printable code point; printable Latin-1 bytes map to themselves and the
// rest to U+0100 onwards, in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune.
var runeToByte map[rune]byte

// byteToString holds string(byteToRune[b]) to avoid conversions in hot loops.
var byteToString [256]string

func init() {
	n := 0
	runeToByte = make(map[rune]byte, 256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteToString[b] = string(byteToRune[b])
	}
}

// byteLevelLen returns the length of byteLevelEncode(s).
func byteLevelLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n += len(byteToString[s[i]])
	}
	return n
}

// byteLevelEncode maps each byte of s to its byte-level code point.
func byteLevelEncode(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// byteLevelDecode maps the code points of a byte-level token back to bytes.
// It reports false when a code point is outside the byte-level alphabet.
func byteLevelDecode(dst []byte, tok string) ([]byte, bool) {
	n := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return dst[:n], false
		}
		dst = append(dst, b)
	}
	return dst, true
}
