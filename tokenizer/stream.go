package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// StreamDecoder turns ids into text as they arrive, for streaming
// generation. It never splits a UTF-8 character whose bytes are spread
// over several tokens (byte-level or byte-fallback), and it gets spaces
// right for decoders that depend on the previous token (Metaspace, Strip).
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int
	prefix      int // start of the context window re-decoded on each id
	read        int // ids[:read] have been turned into text
}

// maxPendingIDs bounds how many ids a StreamDecoder holds back while
// their text ends in an incomplete character: beyond it the replacement
// character is emitted. A UTF-8 character has at most 4 bytes.
const maxPendingIDs = 4

// NewStreamDecoder returns a StreamDecoder; skipSpecial drops special
// tokens as Decode does.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Next adds one id and returns the text that became printable, possibly
// empty. The concatenation of what Next and Flush return equals Decode of
// all ids, except that the stream does not remove spaces before
// punctuation (clean_up_tokenization_spaces): it cannot take back a space
// it has already returned.
func (d *StreamDecoder) Next(id int) string {
	d.ids = append(d.ids, id)
	prev := d.t.decode(d.ids[d.prefix:d.read], d.skipSpecial, false)
	cur := d.t.decode(d.ids[d.prefix:], d.skipSpecial, false)
	if len(cur) <= len(prev) || !strings.HasPrefix(cur, prev) {
		return ""
	}
	if r, _ := utf8.DecodeLastRuneInString(cur); r == utf8.RuneError && len(d.ids)-d.read < maxPendingIDs {
		return ""
	}
	d.prefix, d.read = d.read, len(d.ids)
	return cur[len(prev):]
}

// Flush returns the text of the ids held back so far (an incomplete
// character at the end becomes U+FFFD) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	prev := d.t.decode(d.ids[d.prefix:d.read], d.skipSpecial, false)
	cur := d.t.decode(d.ids[d.prefix:], d.skipSpecial, false)
	d.ids, d.prefix, d.read = d.ids[:0], 0, 0
	if len(cur) <= len(prev) || !strings.HasPrefix(cur, prev) {
		return ""
	}
	return cur[len(prev):]
}
