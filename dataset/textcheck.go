package dataset

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/vlora-convert/vlora-convert/formats"
)

// maxInvalidUTF8 is the fraction of a text file's bytes that may fall
// outside valid UTF-8 (1%): a few stray bytes in a large corpus are
// tolerated (the tokenizer encodes them as bytes), more means binary data
// under a text name.
const maxInvalidUTF8 = 0.01

// CheckText refuses the content b of the text file path when it is binary
// data: a NUL byte (which no text encoding but UTF-16 and UTF-32 holds), or
// more than maxInvalidUTF8 of its bytes outside valid UTF-8. Errors wrap
// formats.ErrInvalid and name the file.
func CheckText(path string, b []byte) error {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("%s: %w: a NUL byte at offset %d: binary data, not UTF-8 text", path, formats.ErrInvalid, i)
	}
	invalid, first := 0, -1
	for off := 0; off < len(b); {
		r, n := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && n == 1 {
			if first < 0 {
				first = off
			}
			invalid++
		}
		off += n
	}
	if invalid > 0 && float64(invalid) > maxInvalidUTF8*float64(len(b)) {
		return fmt.Errorf("%s: %w: %d of its %d bytes are not UTF-8 (the first at offset %d): binary data, not text", path, formats.ErrInvalid, invalid, len(b), first)
	}
	return nil
}
