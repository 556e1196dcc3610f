// Package tokenizer reads Hugging Face tokenizer.json files and encodes and
// decodes text exactly as the Hugging Face tokenizers library does.
//
// It supports the BPE model (byte-level, as GPT-2, Llama 3 and Qwen use it,
// and SentencePiece-style with ▁ and byte fallback, as Llama 2, Mistral and
// Gemma use it) and the WordPiece model (BERT), with the normalizers,
// pre-tokenizers, post-processors and decoders those files use, and
// added tokens. A file with a component this package does not know is
// rejected with an error naming the component type.
//
// Split patterns that need look-ahead run on scanners written for the
// patterns of the GPT-2, Llama 3 (cl100k), Qwen and GPT-4o (o200k)
// families, and on the regexp2 backtracking engine otherwise (possessive
// quantifiers become atomic groups).
//
// Decode turns ids back into text; a StreamDecoder does so one id at a time
// for streaming generation, without splitting a character.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Tokenizer encodes text to token ids and decodes ids to text. It is safe
// for concurrent use.
type Tokenizer struct {
	model    tokenModel
	norm     normalizer    // nil: none
	pre      preTokenizer  // nil: none
	post     postProcessor // nil: none
	dec      decoder       // nil: tokens joined by spaces
	rawTrie  *tokenTrie    // added tokens matched on the raw text
	normTrie *tokenTrie    // added tokens matched on the normalized text

	tokens    []string // id -> token, "" for unused ids
	used      []bool   // whether an id has a token
	special   []bool   // whether an id is a special added token
	ids       map[string]int
	bos, eos  int
	cleanupSp bool
}

// Load reads a tokenizer from a tokenizer.json file, or from a directory
// that holds one. A tokenizer_config.json beside it supplies the BOS and
// EOS tokens and whether decoding cleans up spaces before punctuation
// (clean_up_tokenization_spaces). Malformed files give errors wrapping
// formats.ErrInvalid.
func Load(path string) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var cfg []byte
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if c, err := os.ReadFile(cfgPath); err == nil {
		cfg = c
	}
	t, err := parse(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// configJSON is the part of tokenizer_config.json this package reads.
type configJSON struct {
	BOS     json.RawMessage `json:"bos_token"`
	EOS     json.RawMessage `json:"eos_token"`
	Cleanup *bool           `json:"clean_up_tokenization_spaces"`
}

// tokenName reads a token given as a string or as {"content": ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}

func invalid(err error) error { return fmt.Errorf("%w: %v", formats.ErrInvalid, err) }

// parse builds a tokenizer from the contents of tokenizer.json and of
// tokenizer_config.json (nil when absent).
func parse(data, cfg []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, invalid(err)
	}
	if isNull(f.Model) {
		return nil, invalid(fmt.Errorf("no model"))
	}
	t := &Tokenizer{bos: -1, eos: -1}
	vocab, err := t.buildPipeline(&f)
	if err != nil {
		return nil, invalid(err)
	}
	if err := t.buildVocab(vocab, f.AddedTokens); err != nil {
		return nil, invalid(err)
	}
	if err := t.readSpecials(cfg); err != nil {
		return nil, invalid(err)
	}
	return t, nil
}

// buildPipeline builds the model and the optional normalizer,
// pre-tokenizer, post-processor and decoder of f, and returns the model's
// vocabulary.
func (t *Tokenizer) buildPipeline(f *fileJSON) (map[string]int, error) {
	model, vocab, err := buildModel(f.Model)
	if err != nil {
		return nil, err
	}
	t.model = model
	if !isNull(f.Normalizer) {
		if t.norm, err = buildNormalizer(f.Normalizer); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pre, err = buildPreTokenizer(f.PreTokenizer); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = buildPostProcessor(f.PostProcessor); err != nil {
			return nil, err
		}
	}
	if !isNull(f.Decoder) {
		if t.dec, err = buildDecoder(f.Decoder); err != nil {
			return nil, err
		}
	}
	return vocab, nil
}

// buildVocab fills the id tables from the model's vocabulary and the added
// tokens, and the tries that match added tokens before the model runs
// (normalized ones after normalization).
func (t *Tokenizer) buildVocab(vocab map[string]int, added []addedToken) error {
	size := 0
	for _, id := range vocab {
		if id < 0 {
			return fmt.Errorf("negative token id %d", id)
		}
		size = max(size, id+1)
	}
	for _, a := range added {
		if a.ID < 0 {
			return fmt.Errorf("added token %q: negative id %d", a.Content, a.ID)
		}
		size = max(size, a.ID+1)
	}
	t.tokens = make([]string, size)
	t.used = make([]bool, size)
	t.special = make([]bool, size)
	t.ids = make(map[string]int, len(vocab)+len(added))
	for tok, id := range vocab {
		t.tokens[id], t.used[id] = tok, true
		t.ids[tok] = id
	}
	var raw, normed []addedToken
	var rawKeys, normKeys []string
	for _, a := range added {
		t.tokens[a.ID], t.used[a.ID], t.special[a.ID] = a.Content, true, a.Special
		t.ids[a.Content] = a.ID
		if a.Normalized && t.norm != nil {
			normed = append(normed, a)
			normKeys = append(normKeys, t.norm.normalize(a.Content))
		} else {
			raw = append(raw, a)
			rawKeys = append(rawKeys, a.Content)
		}
	}
	if len(raw) > 0 {
		t.rawTrie = newTokenTrie(raw, rawKeys)
	}
	if len(normed) > 0 {
		t.normTrie = newTokenTrie(normed, normKeys)
	}
	return nil
}

// readSpecials sets BOS and EOS from tokenizer_config.json (cfg, nil when
// absent), else from the post-processor's template, and the clean-up of
// spaces before punctuation.
func (t *Tokenizer) readSpecials(cfg []byte) error {
	var c configJSON
	if cfg != nil {
		if err := json.Unmarshal(cfg, &c); err != nil {
			return fmt.Errorf("tokenizer_config.json: %v", err)
		}
	}
	t.cleanupSp = c.Cleanup != nil && *c.Cleanup
	if id, ok := t.TokenID(tokenName(c.BOS)); ok {
		t.bos = id
	}
	if id, ok := t.TokenID(tokenName(c.EOS)); ok {
		t.eos = id
	}
	if t.post != nil {
		before, after := t.post.specials()
		if t.bos < 0 && len(before) > 0 {
			t.bos = before[0]
		}
		if t.eos < 0 && len(after) > 0 {
			t.eos = after[len(after)-1]
		}
	}
	return nil
}

// VocabSize returns the number of token ids: one more than the largest id
// of the vocabulary and the added tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a token string (a vocabulary entry in the
// model's own spelling, or an added token).
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if tok == "" {
		return 0, false
	}
	id, ok := t.ids[tok]
	return id, ok
}

// Token returns the string of a token id, and false for an unknown id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || !t.used[id] {
		return "", false
	}
	return t.tokens[id], true
}

// BOS returns the beginning-of-sequence token id: tokenizer_config.json's
// bos_token when given, else the first token the post-processor puts
// before a sequence; -1 when there is none. Encode adds it only when the
// post-processor does.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence token id: tokenizer_config.json's
// eos_token when given, else the last token the post-processor puts after
// a sequence; -1 when there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= 0 && id < len(t.special) && t.special[id] }

// Encode returns the token ids of text. Added tokens in the text are always
// recognized; addSpecial applies the post-processor (BOS, CLS/SEP...).
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	var ids []int
	var segs, subs []segment
	var pieces []piece
	segs = t.rawTrie.split(segs, text)
	for k, seg := range segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		s := seg.s
		if t.norm != nil {
			s = t.norm.normalize(s)
		}
		subs = t.normTrie.split(subs[:0], s)
		for j, sub := range subs {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			if sub.s == "" {
				continue
			}
			pieces = append(pieces[:0], piece{s: sub.s, first: k == 0 && j == 0})
			if t.pre != nil {
				pieces = t.pre.preTokenize(pieces)
			}
			for _, p := range pieces {
				ids = t.model.tokenize(ids, p.s)
			}
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	if ids == nil {
		ids = []int{}
	}
	return ids
}

// Decode returns the text of ids. Unknown ids are skipped, and so are
// special tokens when skipSpecial is set.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	return t.decode(ids, skipSpecial, t.cleanupSp)
}

// decode is Decode with the clean-up of spaces before punctuation chosen
// by the caller.
func (t *Tokenizer) decode(ids []int, skipSpecial, cleanup bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.Token(id)
		if !ok || (skipSpecial && t.special[id]) {
			continue
		}
		toks = append(toks, tok)
	}
	var s string
	if t.dec == nil {
		s = strings.Join(toks, " ")
	} else {
		s = strings.Join(t.dec.decodeChain(toks), "")
	}
	if cleanup {
		s = cleanupSpaces(s)
	}
	return s
}
