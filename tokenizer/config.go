package tokenizer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// fileJSON is the part of tokenizer.json this package reads.
type fileJSON struct {
	AddedTokens   json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// component is the union of the fields of every normalizer, pre-tokenizer,
// post-processor and decoder this package knows, tagged by Type.
type component struct {
	Type string `json:"type"`

	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`

	Pattern  *patternJSON `json:"pattern"`
	Content  *string      `json:"content"`
	Prepend  string       `json:"prepend"`
	Behavior string       `json:"behavior"`
	Invert   bool         `json:"invert"`

	StripLeft  bool `json:"strip_left"`
	StripRight bool `json:"strip_right"`

	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`

	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	UseRegex         *bool  `json:"use_regex"`
	Replacement      string `json:"replacement"`
	PrependScheme    string `json:"prepend_scheme"`
	Split            *bool  `json:"split"`
	IndividualDigits bool   `json:"individual_digits"`

	Single        []templateItem             `json:"single"`
	SpecialTokens map[string]templateSpecial `json:"special_tokens"`
	Sep           []json.RawMessage          `json:"sep"`
	Cls           []json.RawMessage          `json:"cls"`

	Start   int    `json:"start"`
	Stop    int    `json:"stop"`
	Prefix  string `json:"prefix"`
	Cleanup *bool  `json:"cleanup"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type templateItem struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

type templateSpecial struct {
	IDs []int `json:"ids"`
}

type modelJSON struct {
	Type         string          `json:"type"`
	Vocab        json.RawMessage `json:"vocab"`
	Merges       json.RawMessage `json:"merges"`
	UnkToken     *string         `json:"unk_token"`
	Prefix       *string         `json:"continuing_subword_prefix"`
	Suffix       *string         `json:"end_of_word_suffix"`
	FuseUnk      bool            `json:"fuse_unk"`
	ByteFallback bool            `json:"byte_fallback"`
	IgnoreMerges bool            `json:"ignore_merges"`
	MaxChars     int             `json:"max_input_chars_per_word"`
}

// isNull reports whether a component is absent.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func parseComponent(raw json.RawMessage, kind string) (*component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", kind, err)
	}
	return &c, nil
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// buildPattern returns the matcher of a Split/Replace pattern.
func buildPattern(p *patternJSON, kind string) (matcher, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("%s: missing pattern", kind)
	case p.String != nil:
		return literalMatcher(*p.String), nil
	case p.Regex != nil:
		if len(*p.Regex) > maxPatternLen {
			return nil, fmt.Errorf("%s: regex of %d bytes, longer than %d", kind, len(*p.Regex), maxPatternLen)
		}
		m, err := compilePattern(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", kind, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s: pattern has neither String nor Regex", kind)
}

func buildNormalizer(raw json.RawMessage, depth int) (normalizer, error) {
	c, err := parseComponent(raw, "normalizer")
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		seq, err := buildAll(c.Normalizers, depth+1, "normalizer", buildNormalizer)
		return normalizerSeq(seq), err
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Replace":
		m, err := buildPattern(c.Pattern, "Replace normalizer")
		if err != nil {
			return nil, err
		}
		if c.Content == nil {
			return nil, fmt.Errorf("Replace normalizer: missing content")
		}
		return replaceNorm{m, *c.Content}, nil
	case "Prepend":
		return prependNorm(c.Prepend), nil
	case "Strip":
		return stripNorm{c.StripLeft, c.StripRight}, nil
	case "BertNormalizer":
		lower := boolOr(c.Lowercase, true)
		return bertNorm{cleanText: boolOr(c.CleanText, true), chineseChars: boolOr(c.HandleChineseChars, true),
			stripAccents: boolOr(c.StripAccents, lower), lowercase: lower}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer type %q", c.Type)
}

func parseScheme(s string, addPrefixSpace *bool) (prependScheme, error) {
	switch s {
	case "always":
		return prependAlways, nil
	case "first":
		return prependFirst, nil
	case "never":
		return prependNever, nil
	case "":
		if addPrefixSpace != nil && !*addPrefixSpace {
			return prependNever, nil
		}
		return prependAlways, nil
	}
	return 0, fmt.Errorf("unknown Metaspace prepend_scheme %q", s)
}

// buildAll builds the members of a Sequence component nested depth deep
// (1 for a top-level Sequence's members).
func buildAll[T any](raws []json.RawMessage, depth int, kind string, build func(json.RawMessage, int) (T, error)) ([]T, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("%s: Sequence nested more than %d deep", kind, maxNesting)
	}
	if len(raws) > maxSequence {
		return nil, fmt.Errorf("%s: Sequence of %d members, more than %d", kind, len(raws), maxSequence)
	}
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		x, err := build(r, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// metaspaceConfig reads the replacement character and prepend scheme of
// the Metaspace pre-tokenizer and decoder.
func metaspaceConfig(c *component) (string, prependScheme, error) {
	if utf8.RuneCountInString(c.Replacement) != 1 {
		return "", 0, fmt.Errorf("Metaspace replacement %q is not one character", c.Replacement)
	}
	sc, err := parseScheme(c.PrependScheme, c.AddPrefixSpace)
	return c.Replacement, sc, err
}

func buildPreTokenizer(raw json.RawMessage, depth int) (preTokenizer, error) {
	c, err := parseComponent(raw, "pre_tokenizer")
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		seq, err := buildAll(c.PreTokenizers, depth+1, "pre_tokenizer", buildPreTokenizer)
		return preTokenizerSeq(seq), err
	case "ByteLevel":
		b := byteLevelPre{addPrefixSpace: boolOr(c.AddPrefixSpace, true)}
		if boolOr(c.UseRegex, true) {
			b.split = &splitter{m: gpt2Scanner{}, behavior: isolated}
		}
		return b, nil
	case "Split":
		m, err := buildPattern(c.Pattern, "Split pre-tokenizer")
		if err != nil {
			return nil, err
		}
		bh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %v", err)
		}
		return splitter{m: m, behavior: bh, invert: c.Invert}, nil
	case "Metaspace":
		rep, sc, err := metaspaceConfig(c)
		if err != nil {
			return nil, err
		}
		return metaspacePre{replacement: rep, scheme: sc, split: boolOr(c.Split, true)}, nil
	case "Digits":
		return newDigitsPre(c.IndividualDigits), nil
	case "Whitespace":
		return newWhitespacePre(), nil
	case "WhitespaceSplit":
		return newWhitespaceSplitPre(), nil
	case "BertPreTokenizer":
		return newBertPre(), nil
	case "Punctuation":
		bh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Punctuation pre-tokenizer: %v", err)
		}
		return splitter{m: runeMatcher(isBertPunct), behavior: bh}, nil
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer type %q", c.Type)
}

// tokenIDPair parses the ["[SEP]", 102] pairs of BertProcessing.
func tokenIDPair(raw []json.RawMessage, kind string) (int, error) {
	var id int
	if len(raw) != 2 || json.Unmarshal(raw[1], &id) != nil {
		return 0, fmt.Errorf("%s: expected [token, id]", kind)
	}
	return id, nil
}

func buildPostProcessor(raw json.RawMessage, depth int) (postProcessor, error) {
	c, err := parseComponent(raw, "post_processor")
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		seq, err := buildAll(c.Processors, depth+1, "post_processor", buildPostProcessor)
		return procSeq(seq), err
	case "ByteLevel":
		return identityProc{}, nil
	case "TemplateProcessing":
		var t templateProc
		seen := false
		for _, it := range c.Single {
			switch {
			case it.Sequence != nil:
				seen = true
			case it.SpecialToken != nil:
				sp, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("TemplateProcessing: special token %q is not declared", it.SpecialToken.ID)
				}
				if seen {
					t.after = append(t.after, sp.IDs...)
				} else {
					t.before = append(t.before, sp.IDs...)
				}
			default:
				return nil, fmt.Errorf("TemplateProcessing: template item is neither SpecialToken nor Sequence")
			}
		}
		return t, nil
	case "BertProcessing", "RobertaProcessing":
		cls, err := tokenIDPair(c.Cls, c.Type+" cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenIDPair(c.Sep, c.Type+" sep")
		if err != nil {
			return nil, err
		}
		return templateProc{before: []int{cls}, after: []int{sep}}, nil
	}
	return nil, fmt.Errorf("unsupported post_processor type %q", c.Type)
}

func buildDecoder(raw json.RawMessage, depth int) (decoder, error) {
	c, err := parseComponent(raw, "decoder")
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		seq, err := buildAll(c.Decoders, depth+1, "decoder", buildDecoder)
		return decoderSeq(seq), err
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "Metaspace":
		rep, sc, err := metaspaceConfig(c)
		if err != nil {
			return nil, err
		}
		return metaspaceDec{replacement: rep, scheme: sc}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return nil, fmt.Errorf("Strip decoder: content must be one character")
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return stripDec{content: r, start: c.Start, stop: c.Stop}, nil
	case "Replace":
		if c.Pattern != nil && c.Pattern.Regex != nil {
			// Decoding has no error to report a runaway match with.
			return nil, fmt.Errorf("Replace decoder: Regex patterns are not supported, only String")
		}
		m, err := buildPattern(c.Pattern, "Replace decoder")
		if err != nil {
			return nil, err
		}
		if c.Content == nil {
			return nil, fmt.Errorf("Replace decoder: missing content")
		}
		return replaceDec{m, *c.Content}, nil
	case "WordPiece":
		prefix := c.Prefix
		if prefix == "" {
			prefix = "##"
		}
		return wordPieceDec{prefix: prefix, cleanup: boolOr(c.Cleanup, true)}, nil
	}
	return nil, fmt.Errorf("unsupported decoder type %q", c.Type)
}

// tokenModel maps one pre-tokenized word to ids.
type tokenModel interface {
	// tokenize appends the ids of word to dst; on a long word it stops
	// with an encodeAbort when ctx is done (see checkCtx).
	tokenize(ctx context.Context, dst []int, word string) []int
}

func strOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// buildModel returns the model and its vocabulary.
func buildModel(raw json.RawMessage) (tokenModel, map[string]int, error) {
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, nil, fmt.Errorf("model: %v", err)
	}
	if mj.Type == "" && !isNull(mj.Merges) {
		mj.Type = "BPE"
	}
	if mj.Type != "BPE" && mj.Type != "WordPiece" {
		return nil, nil, fmt.Errorf("unsupported model type %q", mj.Type)
	}
	vocab, err := decodeVocab(mj.Vocab, "model.vocab")
	if err != nil {
		return nil, nil, err
	}
	switch mj.Type {
	case "BPE":
		merges, err := parseMerges(mj.Merges, maxMergesPerToken*len(vocab)+1024)
		if err != nil {
			return nil, nil, err
		}
		m, err := newBPE(vocab, merges, strOr(mj.UnkToken, ""), strOr(mj.Prefix, ""), strOr(mj.Suffix, ""),
			mj.FuseUnk, mj.ByteFallback, mj.IgnoreMerges)
		return m, vocab, err
	case "WordPiece":
		m, err := newWordPiece(vocab, strOr(mj.UnkToken, "[UNK]"), strOr(mj.Prefix, "##"), mj.MaxChars)
		return m, vocab, err
	}
	return nil, nil, fmt.Errorf("unsupported model type %q", mj.Type)
}

// parseMerges accepts both merge formats: "a b" strings and [a, b] pairs,
// and refuses more than limit merges before decoding them.
func parseMerges(raw json.RawMessage, limit int) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	if n := countElements(raw, limit); n > limit {
		return nil, fmt.Errorf("model.merges: more than %d entries", limit)
	}
	var lists [][]string
	if err := json.Unmarshal(raw, &lists); err == nil {
		pairs := make([][2]string, len(lists))
		for i, l := range lists {
			if len(l) != 2 {
				return nil, fmt.Errorf("model.merges[%d]: want two tokens, not %d", i, len(l))
			}
			pairs[i] = [2]string{l[0], l[1]}
		}
		return pairs, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("model.merges: want \"a b\" strings or [a, b] pairs: %v", err)
	}
	pairs := make([][2]string, len(lines))
	for i, l := range lines {
		a, b, ok := strings.Cut(l, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("model.merges[%d] %s: expected two tokens separated by a space", i, quoteShort(l))
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}
