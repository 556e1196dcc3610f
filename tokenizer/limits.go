package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Bounds on what a tokenizer file may declare, checked before anything
// sized by the file is allocated, so that a small hostile file can neither
// crash the reader nor exhaust memory.
const (
	// MaxFileSize bounds tokenizer.json (64 MiB; the largest vocabularies
	// in use, Gemma's 262,144 tokens, take about 33 MiB).
	MaxFileSize = 64 << 20
	// MaxConfigSize bounds tokenizer_config.json (16 MiB).
	MaxConfigSize = 16 << 20
	// MaxVocabSize bounds the token ids: every id of the vocabulary, the
	// added tokens and the post-processor is below it (2,097,152, twice
	// the largest vocabularies in use).
	MaxVocabSize = 1 << 21
	// maxMergesPerToken bounds the BPE merges per vocabulary entry (Llama
	// 3 has 2.2).
	maxMergesPerToken = 4
	// maxNesting bounds Sequence components nested within one another.
	maxNesting = 16
	// maxSequence bounds the members of one Sequence component.
	maxSequence = 256
	// maxPatternLen bounds the length of a regular expression, in bytes.
	maxPatternLen = 16 << 10
)

// MatchTimeout is the time one search for the next match of a Split or
// Replace regular expression may take before encoding fails: the budget
// that stops a catastrophically backtracking pattern. Ordinary patterns
// take microseconds per match.
const MatchTimeout = 5 * time.Second

// matchTimeout is MatchTimeout; tests shorten it.
var matchTimeout = MatchTimeout

// readRegular reads the regular file at path, refusing anything else (a
// directory, a FIFO, a device: checked before the file is opened, so that
// nothing blocks) and a file longer than limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	return formats.ReadRegularFile(path, limit)
}

// readOptional is readRegular for a file that may be absent (nil, nil).
func readOptional(path string, limit int64) ([]byte, error) {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil, nil
	}
	return readRegular(path, limit)
}

// countElements returns the number of elements of the JSON array or
// object raw (its top level only), or limit+1 as soon as it holds more
// than limit: a scan that allocates nothing, so that a decoder is sized
// only after the count is known to be within bounds. raw must be valid
// JSON (as json.RawMessage fields of a decoded value are).
func countElements(raw []byte, limit int) int {
	depth, n, empty := 0, 0, true
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
			if depth == 1 {
				empty = false
			}
		case '{', '[':
			if depth == 1 {
				empty = false
			}
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				if n++; n >= limit {
					return limit + 1
				}
			}
		case ' ', '\t', '\n', '\r':
		default:
			if depth == 1 {
				empty = false
			}
		}
	}
	if empty {
		return 0
	}
	return n + 1
}

// decodeBounded decodes the JSON array or object raw into v after
// checking that it holds at most limit elements; a null or absent value
// leaves v as it is.
func decodeBounded(raw json.RawMessage, limit int, what string, v any) error {
	if isNull(raw) {
		return nil
	}
	if n := countElements(raw, limit); n > limit {
		return fmt.Errorf("%s: more than %d entries", what, limit)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return nil
}

// decodeVocab decodes a {"token": id, ...} vocabulary of at most
// MaxVocabSize entries, refusing ids outside [0, MaxVocabSize).
func decodeVocab(raw json.RawMessage, what string) (map[string]int, error) {
	var vocab map[string]int
	if err := decodeBounded(raw, MaxVocabSize, what, &vocab); err != nil {
		return nil, err
	}
	if vocab == nil {
		return nil, fmt.Errorf("%s: want an object of token ids", what)
	}
	for tok, id := range vocab {
		if id < 0 || id >= MaxVocabSize {
			return nil, fmt.Errorf("%s: token %s has id %d, outside [0, %d)", what, quoteShort(tok), id, MaxVocabSize)
		}
	}
	return vocab, nil
}

// checkID refuses a token id outside [0, MaxVocabSize).
func checkID(id int, what string) error {
	if id < 0 || id >= MaxVocabSize {
		return fmt.Errorf("%s: id %d outside [0, %d)", what, id, MaxVocabSize)
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		cut := 40
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
