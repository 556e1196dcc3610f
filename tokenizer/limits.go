package tokenizer

import (
	"bytes"
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

// decodeArray decodes the JSON array raw one element at a time, calling
// each for every element with a decoder positioned on it, and refuses an
// array of more than limit elements before decoding the next one. A null
// or absent array has no elements.
func decodeArray(raw json.RawMessage, limit int, what string, each func(i int, dec *json.Decoder) error) error {
	if isNull(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return fmt.Errorf("%s: want an array", what)
	}
	for i := 0; dec.More(); i++ {
		if i >= limit {
			return fmt.Errorf("%s: more than %d entries", what, limit)
		}
		if err := each(i, dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return nil
}

// decodeVocab decodes a {"token": id, ...} vocabulary, refusing ids
// outside [0, MaxVocabSize) and more than MaxVocabSize entries as it reads.
func decodeVocab(raw json.RawMessage, what string) (map[string]int, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s: want an object of token ids", what)
	}
	vocab := map[string]int{}
	for dec.More() {
		if len(vocab) >= MaxVocabSize {
			return nil, fmt.Errorf("%s: more than %d tokens", what, MaxVocabSize)
		}
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		tok, _ := t.(string)
		var id int
		if err := dec.Decode(&id); err != nil {
			return nil, fmt.Errorf("%s: token %s: id is not an integer in range", what, quoteShort(tok))
		}
		if id < 0 || id >= MaxVocabSize {
			return nil, fmt.Errorf("%s: token %s has id %d, outside [0, %d)", what, quoteShort(tok), id, MaxVocabSize)
		}
		vocab[tok] = id
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
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
