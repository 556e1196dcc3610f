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
//
// A tokenizer file is input like any other: Load reads regular files only,
// bounds the file's size and every id, count and nesting depth it declares
// before sizing anything from them, and EncodeContext stops on its
// context and when a regular expression of the file exceeds MatchTimeout
// for one match, so that no file can crash, exhaust memory or hang the
// program.
package tokenizer

import (
	"context"
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
// (clean_up_tokenization_spaces).
//
// Both must be regular files (a FIFO or a device is refused before it is
// opened) of at most MaxFileSize and MaxConfigSize bytes, and every token
// id they declare must lie in [0, MaxVocabSize). Malformed or out-of-bound
// files give errors wrapping formats.ErrInvalid that name the file and the
// field.
func Load(path string) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := readRegular(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := readOptional(cfgPath, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
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
func parse(data, cfg []byte) (tok *Tokenizer, err error) {
	defer func() {
		// Normalizing the added tokens runs the normalizer's patterns.
		if r := recover(); r != nil {
			mf, ok := r.(encodeAbort)
			if !ok {
				panic(r)
			}
			tok, err = nil, mf.err
		}
	}()
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, invalid(err)
	}
	if isNull(f.Model) {
		return nil, invalid(fmt.Errorf("no model"))
	}
	var added []addedToken
	if err := decodeBounded(f.AddedTokens, MaxVocabSize, "added_tokens", &added); err != nil {
		return nil, invalid(err)
	}
	t := &Tokenizer{bos: -1, eos: -1}
	vocab, err := t.buildPipeline(&f)
	if err != nil {
		return nil, invalid(err)
	}
	if err := t.buildVocab(vocab, added); err != nil {
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
		if t.norm, err = buildNormalizer(f.Normalizer, 0); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pre, err = buildPreTokenizer(f.PreTokenizer, 0); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = buildPostProcessor(f.PostProcessor, 0); err != nil {
			return nil, err
		}
	}
	if !isNull(f.Decoder) {
		if t.dec, err = buildDecoder(f.Decoder, 0); err != nil {
			return nil, err
		}
	}
	return vocab, nil
}

// buildVocab fills the id tables from the model's vocabulary and the added
// tokens, and the tries that match added tokens before the model runs
// (normalized ones after normalization). Every id is below MaxVocabSize
// (checked as they were read), and so is the size of the tables.
func (t *Tokenizer) buildVocab(vocab map[string]int, added []addedToken) error {
	size := 0
	for _, id := range vocab {
		if err := checkID(id, "model.vocab"); err != nil {
			return err
		}
		size = max(size, id+1)
	}
	for i, a := range added {
		if err := checkID(a.ID, fmt.Sprintf("added_tokens[%d] %s", i, quoteShort(a.Content))); err != nil {
			return err
		}
		size = max(size, a.ID+1)
	}
	if t.post != nil {
		before, after := t.post.specials()
		for _, id := range append(append([]int(nil), before...), after...) {
			if id < 0 || id >= size {
				return fmt.Errorf("post_processor: special token id %d outside the vocabulary [0, %d)", id, size)
			}
		}
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
//
// Encode is EncodeContext without cancellation, for text and tokenizers
// known to be benign: where EncodeContext fails (a regular expression of
// the tokenizer runs out of MatchTimeout), Encode returns nil.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	ids, err := t.EncodeContext(context.Background(), text, addSpecial)
	if err != nil {
		return nil
	}
	return ids
}

// cancelCheckPieces is how many pre-tokenized pieces EncodeContext encodes
// between checks of its context.
const cancelCheckPieces = 1024

// checkCtx ends the encoding under way (see encodeAbort) when ctx is done;
// the model calls it in the loops over long words.
func checkCtx(ctx context.Context) {
	if ctx == nil {
		return
	}
	if err := ctx.Err(); err != nil {
		panic(encodeAbort{err})
	}
}

// EncodeContext returns the token ids of text, as Encode does. It stops
// with ctx's error when ctx is done (checked between added-token segments,
// every cancelCheckPieces words and within long words), and with an error wrapping
// ErrPattern when one search of a regular expression of the tokenizer
// takes longer than MatchTimeout.
func (t *Tokenizer) EncodeContext(ctx context.Context, text string, addSpecial bool) (ids []int, err error) {
	defer func() {
		if r := recover(); r != nil {
			mf, ok := r.(encodeAbort)
			if !ok {
				panic(r)
			}
			ids, err = nil, mf.err
		}
	}()
	var segs, subs []segment
	var pieces []piece
	segs = t.rawTrie.split(segs, text)
	words := 0
	for k, seg := range segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
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
				pieces = t.pre.preTokenize(ctx, pieces)
			}
			for _, p := range pieces {
				if words++; words%cancelCheckPieces == 0 {
					if err := ctx.Err(); err != nil {
						return nil, err
					}
				}
				ids = t.model.tokenize(ctx, ids, p.s)
			}
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	if ids == nil {
		ids = []int{}
	}
	return ids, nil
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
