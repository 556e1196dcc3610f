package convert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	tokNormal      int32 = 1
	tokUnknown     int32 = 2
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
	tokByte        int32 = 6
)

// hfTokenizerFile is the part of tokenizer.json the GGUF vocabulary reads
// beyond what package tokenizer exposes.
type hfTokenizerFile struct {
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        struct {
		Type         string          `json:"type"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		UnkToken     *string         `json:"unk_token"`
	} `json:"model"`
}

// merges reads the merges, written as "a b" strings or as [a, b] pairs.
func (f *hfTokenizerFile) merges() ([][2]string, error) {
	if len(f.Model.Merges) == 0 || string(f.Model.Merges) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(f.Model.Merges, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d %q has no space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(f.Model.Merges, &pairs); err != nil {
		return nil, fmt.Errorf("merges: %v", err)
	}
	return pairs, nil
}

// hasComponent reports whether the JSON component raw (possibly a
// Sequence) contains an object of the given type, and returns it.
func hasComponent(raw json.RawMessage, typ string) (map[string]any, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	var walk func(v any) (map[string]any, bool)
	walk = func(v any) (map[string]any, bool) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == typ {
				return x, true
			}
			for _, e := range x {
				if m, ok := walk(e); ok {
					return m, true
				}
			}
		case []any:
			for _, e := range x {
				if m, ok := walk(e); ok {
					return m, true
				}
			}
		}
		return nil, false
	}
	return walk(v)
}

var byteToken = regexp.MustCompile(`^<0x[0-9A-F]{2}>$`)

// Known split patterns of byte-level BPE tokenizers and llama.cpp's names
// for them (tokenizer.ggml.pre).
var preTokenizerNames = []struct{ fragment, name string }{
	{`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}`, "llama-bpe"},
	{`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|`, "qwen2"},
	{`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, "gpt-2"},
}

// ggufVocab returns the tokenizer.ggml.* metadata for the tokenizer.json
// at path (a file or a directory holding one), sized to cfg's vocabulary.
// SentencePiece-style BPE with byte fallback becomes llama.cpp's "llama"
// model, with scores from the merge ranks (a token made by the merge of
// rank r scores −r, so llama.cpp merges in the order Hugging Face does);
// byte-level BPE becomes its "gpt2" model with the merges.
func ggufVocab(path string, cfg *formats.Config) ([]gguf.KV, error) {
	file := path
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		file = filepath.Join(path, "tokenizer.json")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("%w: no tokenizer.json at %s (GGUF files carry their tokenizer; pass one with --tokenizer)", formats.ErrInvalid, path)
	}
	tok, err := tokenizer.Load(file)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var f hfTokenizerFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", file, formats.ErrInvalid, err)
	}
	if f.Model.Type != "BPE" {
		return nil, fmt.Errorf("%s: %w: tokenizer model %q: the GGUF export writes BPE tokenizers", file, formats.ErrInvalid, f.Model.Type)
	}
	merges, err := f.merges()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", file, formats.ErrInvalid, err)
	}
	n := cfg.VocabSize
	if tok.VocabSize() > n {
		return nil, fmt.Errorf("%s: %w: %d tokens, but the model's vocab_size is %d", file, formats.ErrInvalid, tok.VocabSize(), n)
	}
	_, byteLevel := hasComponent(f.PreTokenizer, "ByteLevel")
	if !byteLevel {
		_, byteLevel = hasComponent(f.Decoder, "ByteLevel")
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	unk := ""
	if f.Model.UnkToken != nil {
		unk = *f.Model.UnkToken
	}
	for id := range n {
		s, ok := tok.Token(id)
		switch {
		case !ok:
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokUnused
		case tok.IsSpecial(id):
			tokens[id], types[id] = s, tokControl
		case unk != "" && s == unk:
			tokens[id], types[id] = s, tokUnknown
		case !byteLevel && f.Model.ByteFallback && byteToken.MatchString(s):
			tokens[id], types[id] = s, tokByte
		default:
			tokens[id], types[id] = s, tokNormal
		}
	}
	var kv []gguf.KV
	switch {
	case byteLevel:
		pre := "default"
		if sp, ok := hasComponent(f.PreTokenizer, "Split"); ok {
			if pat, ok := sp["pattern"].(map[string]any); ok {
				re, _ := pat["Regex"].(string)
				for _, p := range preTokenizerNames {
					if strings.HasPrefix(re, p.fragment) || re == p.fragment {
						pre = p.name
						break
					}
				}
			}
		} else if bl, ok := hasComponent(f.PreTokenizer, "ByteLevel"); ok && bl["use_regex"] != false {
			pre = "gpt-2"
		}
		ms := make([]string, len(merges))
		for i, m := range merges {
			ms[i] = m[0] + " " + m[1]
		}
		kv = []gguf.KV{
			{Key: "tokenizer.ggml.model", Value: "gpt2"},
			{Key: "tokenizer.ggml.pre", Value: pre},
			{Key: "tokenizer.ggml.tokens", Value: tokens},
			{Key: "tokenizer.ggml.token_type", Value: types},
			{Key: "tokenizer.ggml.merges", Value: ms},
		}
	case f.Model.ByteFallback:
		rank := map[string]int{}
		for r, m := range merges {
			if _, ok := rank[m[0]+m[1]]; !ok {
				rank[m[0]+m[1]] = r
			}
		}
		scores := make([]float32, n)
		for id, s := range tokens {
			if r, ok := rank[s]; ok && types[id] == tokNormal {
				scores[id] = -float32(r)
			} else {
				scores[id] = -float32(len(merges) + 1)
			}
		}
		_, prepend := hasComponent(f.Normalizer, "Prepend")
		if ms, ok := hasComponent(f.PreTokenizer, "Metaspace"); ok {
			prepend = ms["prepend_scheme"] != "never" && ms["add_prefix_space"] != false
		}
		kv = []gguf.KV{
			{Key: "tokenizer.ggml.model", Value: "llama"},
			{Key: "tokenizer.ggml.tokens", Value: tokens},
			{Key: "tokenizer.ggml.scores", Value: scores},
			{Key: "tokenizer.ggml.token_type", Value: types},
			{Key: "tokenizer.ggml.add_space_prefix", Value: prepend},
		}
		if unk != "" {
			if id, ok := tok.TokenID(unk); ok {
				kv = append(kv, gguf.KV{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(id)})
			}
		}
	default:
		return nil, fmt.Errorf("%s: %w: a BPE tokenizer that is neither byte-level nor SentencePiece-style with byte fallback", file, formats.ErrInvalid)
	}
	bos, eos := specialIDs(path, cfg, tok)
	if bos >= 0 && bos < n {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.bos_token_id", Value: uint32(bos)})
	}
	if eos >= 0 && eos < n {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.eos_token_id", Value: uint32(eos)})
	}
	// Whether the tokenizer adds BOS or EOS, as its post-processor does.
	plain, special := tok.Encode("a", false), tok.Encode("a", true)
	addBOS := len(special) > len(plain) && special[0] == bos && (len(plain) == 0 || plain[0] != bos)
	addEOS := len(special) > len(plain) && special[len(special)-1] == eos
	kv = append(kv,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: addBOS},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: addEOS})
	return kv, nil
}

// specialIDs returns the BOS and EOS ids: config.json's bos_token_id and
// generation_config.json's eos_token_id (the first of a list) beside the
// tokenizer, else config.json's, else the tokenizer's; −1 when none.
func specialIDs(path string, cfg *formats.Config, tok *tokenizer.Tokenizer) (bos, eos int) {
	first := func(v any) (int, bool) {
		switch x := v.(type) {
		case float64:
			return int(x), true
		case []any:
			if len(x) > 0 {
				if f, ok := x[0].(float64); ok {
					return int(f), true
				}
			}
		}
		return 0, false
	}
	bos, eos = tok.BOS(), tok.EOS()
	if v, ok := first(cfg.Raw["bos_token_id"]); ok {
		bos = v
	}
	if v, ok := first(cfg.Raw["eos_token_id"]); ok {
		eos = v
	}
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "generation_config.json")); err == nil {
		var gc map[string]any
		if json.Unmarshal(b, &gc) == nil {
			if v, ok := first(gc["eos_token_id"]); ok {
				eos = v
			}
		}
	}
	return bos, eos
}
