package tokenizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"

	"github.com/vlora-convert/vlora-convert/formats"
)

// byteLevelTokenizer builds a GPT-2 style tokenizer: the 256 byte-level
// code points, the given merges (their results appended to the
// vocabulary) and the given split pattern before the byte mapping.
func byteLevelTokenizer(t testing.TB, pattern string, merges []string) *Tokenizer {
	t.Helper()
	tok, err := parse(byteLevelJSON(pattern, merges), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// byteLevelJSON is the tokenizer.json of byteLevelTokenizer.
func byteLevelJSON(pattern string, merges []string) []byte {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[byteToString[b]] = b
	}
	for _, m := range merges {
		a, b, _ := strings.Cut(m, " ")
		if _, ok := vocab[a+b]; !ok {
			vocab[a+b] = len(vocab)
		}
	}
	vj, _ := json.Marshal(vocab)
	mj, _ := json.Marshal(merges)
	pj, _ := json.Marshal(pattern)
	return []byte(fmt.Sprintf(`{"added_tokens":[{"id":%d,"content":"<|endoftext|>","special":true,"normalized":false}],
		"normalizer":{"type":"NFC"},
		"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":%s},"behavior":"Isolated","invert":false},
			{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},
		"post_processor":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},
		"model":{"type":"BPE","vocab":%s,"merges":%s}}`, len(vocab), pj, vj, mj))
}

// spmTokenizer builds a Llama 2 style tokenizer: ▁ normalizer, a few
// letters, byte fallback for everything else.
func spmTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := parse(spmJSON(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// spmJSON is the tokenizer.json of spmTokenizer.
func spmJSON() []byte {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := range 256 {
		vocab[fmt.Sprintf("<0x%02X>", b)] = len(vocab)
	}
	for _, s := range []string{"▁", "a", "b", "e", "t", "h", "▁t", "he", "▁the", "▁▁", "ab"} {
		vocab[s] = len(vocab)
	}
	merges := []string{"▁ t", "h e", "▁t he", "▁ ▁", "a b"}
	vj, _ := json.Marshal(vocab)
	mj, _ := json.Marshal(merges)
	return []byte(fmt.Sprintf(`{"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],
		"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
		"pre_tokenizer":null,
		"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
			"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},
		"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
		"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,"vocab":%s,"merges":%s}}`, vj, mj))
}

var fuzzSeeds = []string{"", " ", "Hello world", "I'm  fine\n\n\tok ", "<|endoftext|>x<|endoftext|>", "日本語 👨‍👩‍👧", "\x00\xff\xfe", "e\u0301", "the  thethe ab", "'S 123456 ",
	"[MASK] Hello, World!"}

// FuzzEncode checks that encoding never panics, that byte-level and
// byte-fallback tokenizers decode what they encode, and that ids are in
// range.
func FuzzEncode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	byteLevel := map[string]*Tokenizer{
		"gpt2":   byteLevelTokenizer(f, patternGPT2, []string{"Ġ t", "h e", "Ġt he"}),
		"cl100k": byteLevelTokenizer(f, patternCL100K, []string{"Ġ t", "h e", "Ġt he"}),
		"regex":  byteLevelTokenizer(f, `\p{L}+|\s+(?!\S)|\s+|.`, []string{"Ġ t", "h e", "Ġt he"}),
	}
	spm := spmTokenizer(f)
	bert, err := Load(filepath.Join("testdata", "bert"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := utf8.ValidString(s)
		for name, tok := range byteLevel {
			ids := tok.Encode(s, true)
			checkRange(t, name, tok, ids)
			// NFC may change valid text; compare with its normal form.
			if want := tok.norm.normalize(s); valid && tok.Decode(ids, false) != want {
				t.Errorf("%s: Decode(Encode(%q)) = %q", name, s, tok.Decode(ids, false))
			}
		}
		ids := spm.Encode(s, false)
		checkRange(t, "spm", spm, ids)
		if valid && !strings.Contains(s, "▁") && !strings.Contains(s, "<unk>") && !strings.Contains(s, "<s>") && !strings.Contains(s, "</s>") {
			if got := spm.Decode(ids, false); got != s {
				t.Errorf("spm: Decode(Encode(%q)) = %q", s, got)
			}
		}
		checkRange(t, "bert", bert, bert.Encode(s, true))
	})
}

func checkRange(t *testing.T, name string, tok *Tokenizer, ids []int) {
	for _, id := range ids {
		if _, ok := tok.Token(id); !ok {
			t.Fatalf("%s: id %d out of the vocabulary", name, id)
		}
	}
}

// FuzzScanner checks the hand-written split scanners against regexp2.
func FuzzScanner(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	type pair struct {
		sc  matcher
		ref matcher
	}
	var pairs []pair
	for _, expr := range []string{patternGPT2, patternCL100K, patternQwen, patternO200K} {
		sc, _ := knownScanner(expr)
		pairs = append(pairs, pair{sc, regexMatcher{regexp2.MustCompile(expr, regexp2.None), expr}})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 'ſ') {
			// regexp2 counts invalid bytes differently and does not fold ſ
			// to s; Hugging Face's engine does.
			t.Skip()
		}
		for i, p := range pairs {
			if got, want := p.sc.find(nil, s), p.ref.find(nil, s); !slices.Equal(got, want) {
				t.Errorf("pattern %d, %q: scanner %v, regexp2 %v", i, s, got, want)
			}
		}
	})
}

// loadSeeds are tokenizer files for FuzzLoad to mutate: the BERT test
// file, and byte-level, SentencePiece-style and small BPE files with
// normalizers, Split patterns, post-processors and decoders.
func loadSeeds(f *testing.F) [][]byte {
	bert, err := os.ReadFile(filepath.Join("testdata", "bert", "tokenizer.json"))
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{bert,
		[]byte(`{"added_tokens":[{"id":3,"content":"<s>","special":true}],"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`),
		[]byte(`{"added_tokens":[{"id":3,"content":"<s>","special":true,"lstrip":true,"rstrip":true,"single_word":true,"normalized":true}],` +
			`"normalizer":{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Replace","pattern":{"Regex":"a+"},"content":"b"},{"type":"Strip","strip_left":true}]},` +
			`"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t)|\\p{L}+(?=\\s)|\\s+"},"behavior":"MergedWithNext"},{"type":"Digits","individual_digits":true}]},` +
			`"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{"<s>":{"ids":[3]}}},` +
			`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"b"},"content":"a"},{"type":"Strip","content":" ","start":1,"stop":1}]},` +
			`"model":{"type":"BPE","unk_token":"a","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}}`),
		[]byte(`{"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1,"##b":2},"max_input_chars_per_word":5},` +
			`"normalizer":{"type":"BertNormalizer"},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":{"type":"BertProcessing","cls":["[UNK]",0],"sep":["a",1]},"decoder":{"type":"WordPiece"}}`),
	}
	seeds = append(seeds, byteLevelJSON(`\p{L}+|\s+(?!\S)|\s+|.`, []string{"Ġ t", "h e", "Ġt he"}), spmJSON())
	return seeds
}

// FuzzLoad checks that no tokenizer file, however malformed, makes
// parsing panic or allocate beyond its bounds, that a file that parses
// either encodes text to ids of its vocabulary or fails with ErrPattern,
// and that decoding and stream-decoding those ids does not panic.
func FuzzLoad(f *testing.F) {
	for _, s := range loadSeeds(f) {
		f.Add(s, "Hello world, I'm <s> 123 ab  ab\n")
	}
	defer func(d time.Duration) { matchTimeout = d }(matchTimeout)
	matchTimeout = 100 * time.Millisecond
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if len(data) > 1<<16 || len(text) > 1<<10 {
			t.Skip()
		}
		tok, err := parse(data, nil)
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, add := range []bool{false, true} {
			ids, err := tok.EncodeContext(context.Background(), text, add)
			if err != nil {
				if !errors.Is(err, ErrPattern) {
					t.Fatalf("Encode: %v", err)
				}
				continue
			}
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("id %d outside [0, %d)", id, tok.VocabSize())
				}
			}
			tok.Decode(ids, add)
			sd := tok.NewStreamDecoder(false)
			for _, id := range ids {
				sd.Next(id)
			}
			sd.Flush()
		}
		tok.Decode([]int{-1, 0, tok.VocabSize(), 1 << 40}, false)
	})
}

// FuzzLoadFields builds a well-formed tokenizer file around fuzzed
// values where a hostile file would put them (a vocabulary id, an added
// token's id and content, a Split or Replace regular expression, a merge,
// a template's special id, a Strip decoder's counts), so that the fuzzer
// explores them without first having to keep the JSON valid; the checks
// are those of FuzzLoad.
func FuzzLoadFields(f *testing.F) {
	f.Add(int64(2), int64(3), "<s>", `\p{L}+|\s+`, false, "a b", int64(3), 1, "ab a<s>b")
	f.Add(int64(1<<62), int64(-1), "", `(a|aa)+$`, true, "a", int64(1e10), -5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaa!")
	f.Add(int64(7), int64(1<<40), "a", `(?<=a)b*+|[^\d]{2,}?`, false, "ab b", int64(0), 1<<30, "")
	defer func(d time.Duration) { matchTimeout = d }(matchTimeout)
	matchTimeout = 100 * time.Millisecond
	f.Fuzz(func(t *testing.T, vocabID, addedID int64, content, pattern string, replace bool, mergeLine string, templateID int64, strip int, text string) {
		if len(pattern) > 256 || len(text) > 256 || len(content) > 64 || len(mergeLine) > 64 {
			t.Skip()
		}
		q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
		pre, norm := `{"type":"Split","pattern":{"Regex":`+q(pattern)+`},"behavior":"Isolated"}`, "null"
		if replace {
			pre, norm = "null", `{"type":"Replace","pattern":{"Regex":`+q(pattern)+`},"content":"b"}`
		}
		js := fmt.Sprintf(`{"added_tokens":[{"id":%d,"content":%s,"special":true,"normalized":%t}],"normalizer":%s,"pre_tokenizer":%s,`+
			`"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"s"}},{"Sequence":{"id":"A"}}],"special_tokens":{"s":{"ids":[%d]}}},`+
			`"decoder":{"type":"Strip","content":" ","start":%d,"stop":%d},`+
			`"model":{"type":"BPE","unk_token":"a","vocab":{"a":0,"b":1,"ab":2,"x":%d},"merges":[%s]}}`,
			addedID, q(content), replace, norm, pre, templateID, strip, -strip, vocabID, q(mergeLine))
		tok, err := parse([]byte(js), nil)
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, add := range []bool{false, true} {
			ids, err := tok.EncodeContext(context.Background(), text, add)
			if err != nil {
				if !errors.Is(err, ErrPattern) {
					t.Fatalf("Encode: %v", err)
				}
				continue
			}
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("id %d outside [0, %d)", id, tok.VocabSize())
				}
			}
			tok.Decode(ids, add)
			sd := tok.NewStreamDecoder(false)
			for _, id := range ids {
				sd.Next(id)
			}
			sd.Flush()
		}
	})
}
