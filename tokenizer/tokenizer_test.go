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

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// TestBERT checks the WordPiece fixture; the expected ids and texts are
// those of @huggingface/tokenizers 0.2.0 on the same file.
func TestBERT(t *testing.T) {
	tok, err := Load(filepath.Join("testdata", "bert"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text       string
		addSpecial bool
		want       []int
	}{
		{"Hello, World! unaffable dogs 中x", false, []int{14, 16, 15, 12, 9, 10, 11, 19, 18, 17, 1}},
		{"Hello, World!", true, []int{2, 14, 16, 15, 12, 3}},
		{"the [MASK] fox", false, []int{5, 4, 8}},
		{"THE\tQuick\u00a0BROWN   fox.", false, []int{5, 6, 7, 8, 13}},
		{"", true, []int{2, 3}},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			if got := tok.Encode(c.text, c.addSpecial); !slices.Equal(got, c.want) {
				t.Errorf("Encode = %v, want %v", got, c.want)
			}
		})
	}
	if got, want := tok.Decode([]int{2, 14, 16, 15, 12, 9, 10, 11, 3}, true), "hello, world! unaffable"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	if got, want := tok.Decode([]int{2, 14, 3}, false), "[CLS] hello [SEP]"; got != want {
		t.Errorf("Decode with special = %q, want %q", got, want)
	}
	if tok.BOS() != 2 || tok.EOS() != 3 || tok.VocabSize() != 20 {
		t.Errorf("BOS %d EOS %d VocabSize %d, want 2 3 20", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
	if id, ok := tok.TokenID("##aff"); !ok || id != 10 {
		t.Errorf("TokenID(##aff) = %d %v", id, ok)
	}
}

// charTokenizer returns the JSON of a BPE tokenizer whose vocabulary holds
// the given tokens (ids in order), with the given merges and model options
// and added tokens.
func charTokenizer(t *testing.T, vocab []string, merges []string, modelOpts, added, normalizer string) *Tokenizer {
	t.Helper()
	v := map[string]int{}
	for i, s := range vocab {
		v[s] = i
	}
	vj, _ := json.Marshal(v)
	mj, _ := json.Marshal(merges)
	if added == "" {
		added = "[]"
	}
	if normalizer == "" {
		normalizer = "null"
	}
	js := fmt.Sprintf(`{"added_tokens":%s,"normalizer":%s,"pre_tokenizer":null,"post_processor":null,"decoder":{"type":"Fuse"},
		"model":{"type":"BPE","vocab":%s,"merges":%s%s}}`, added, normalizer, vj, mj, modelOpts)
	tok, err := parse([]byte(js), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBPEModel(t *testing.T) {
	vocab := []string{"<unk>", "a", "b", "c", "ab", "bc", "abc", "<0xC3>", "<0xA9>", " ", "t", "o", "k", "T", "<m>", "tok", "bb"}
	id := func(s string) int { return slices.Index(vocab, s) }
	cases := []struct {
		name, opts, text string
		merges           []string
		want             []string
	}{
		{"rank order", "", "abc", []string{"b c", "a b"}, []string{"a", "bc"}},
		{"rank order 2", "", "abc", []string{"a b", "b c", "ab c"}, []string{"abc"}},
		{"leftmost first", "", "bbb", []string{"b b"}, []string{"bb", "b"}},
		{"ignore merges", `,"ignore_merges":true`, "abc", []string{"a b"}, []string{"abc"}},
		{"no ignore merges", `,"ignore_merges":false`, "abc", []string{"a b"}, []string{"ab", "c"}},
		{"unk", `,"unk_token":"<unk>"`, "xxa", nil, []string{"<unk>", "<unk>", "a"}},
		{"fuse unk", `,"unk_token":"<unk>","fuse_unk":true`, "xxa", nil, []string{"<unk>", "a"}},
		{"no unk drops", ``, "xa", nil, []string{"a"}},
		{"nothing known", ``, "x", nil, nil},
		{"byte fallback", `,"byte_fallback":true,"unk_token":"<unk>"`, "aé", nil, []string{"a", "<0xC3>", "<0xA9>"}},
		{"byte fallback missing byte", `,"byte_fallback":true,"unk_token":"<unk>"`, "ü", nil, []string{"<unk>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := charTokenizer(t, vocab, c.merges, c.opts, "", "")
			var want []int
			for _, s := range c.want {
				want = append(want, id(s))
			}
			if got := tok.Encode(c.text, false); !slices.Equal(got, want) {
				t.Errorf("Encode(%q) = %v, want %v", c.text, got, want)
			}
		})
	}
}

func TestBPEContinuingSubwordPrefix(t *testing.T) {
	tok := charTokenizer(t, []string{"a", "##b", "ab", "##c", "##bc"}, []string{"a ##b"}, `,"continuing_subword_prefix":"##"`, "", "")
	if got, want := tok.Encode("abc", false), []int{2, 3}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
}

// TestAddedTokens checks the matching of added tokens. The expected ids
// are those of @huggingface/tokenizers 0.2.0 on the same tokenizer, except
// for single_word, which that library ignores: they follow the Rust
// library, where a single_word token does not match inside a word.
func TestAddedTokens(t *testing.T) {
	vocab := []string{"<unk>", "a", "b", " ", "t", "o", "k", "<m>", "tok"}
	added := `[{"id":7,"content":"<m>","single_word":false,"lstrip":%v,"rstrip":%v,"normalized":false,"special":true},
		{"id":8,"content":"tok","single_word":true,"lstrip":false,"rstrip":false,"normalized":true,"special":false}]`
	cases := []struct {
		name          string
		lstrip, rstrp bool
		text          string
		want          []int
	}{
		{"plain", false, false, "a <m> b", []int{1, 3, 7, 3, 2}},
		{"lstrip", true, false, "a  <m> b", []int{1, 7, 3, 2}},
		{"rstrip", false, true, "a <m>  b", []int{1, 3, 7, 2}},
		{"both", true, true, "a <m> b", []int{1, 7, 2}},
		{"single word", false, false, "tok a", []int{8, 3, 1}},
		{"single word inside a word", false, false, "atok", []int{1, 4, 5, 6}},
		{"normalized", false, false, "TOK", []int{8}},
		{"adjacent", false, false, "<m><m>", []int{7, 7}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := charTokenizer(t, vocab, nil, "", fmt.Sprintf(added, c.lstrip, c.rstrp), `{"type":"Lowercase"}`)
			if got := tok.Encode(c.text, false); !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
			}
		})
	}
	tok := charTokenizer(t, vocab, nil, "", fmt.Sprintf(added, false, false), "")
	if got, want := tok.Decode([]int{1, 7, 8}, true), "atok"; got != want {
		t.Errorf("Decode skipping special = %q, want %q", got, want)
	}
	if !tok.IsSpecial(7) || tok.IsSpecial(8) {
		t.Error("IsSpecial: want 7 special, 8 not")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, json, want string
	}{
		{"not json", `{`, "unexpected end"},
		{"no model", `{"model":null}`, "no model"},
		{"unknown normalizer", `{"normalizer":{"type":"Frobnicate"},"model":{"type":"BPE","vocab":{},"merges":[]}}`, `normalizer type "Frobnicate"`},
		{"unknown pre-tokenizer", `{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"UnicodeScripts"}]},"model":{"type":"BPE","vocab":{},"merges":[]}}`, `pre_tokenizer type "UnicodeScripts"`},
		{"unknown decoder", `{"decoder":{"type":"CTC"},"model":{"type":"BPE","vocab":{},"merges":[]}}`, `decoder type "CTC"`},
		{"unknown post-processor", `{"post_processor":{"type":"Magic"},"model":{"type":"BPE","vocab":{},"merges":[]}}`, `post_processor type "Magic"`},
		{"unknown model", `{"model":{"type":"Unigram","vocab":[]}}`, `model type "Unigram"`},
		{"merge not in vocab", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, "not in the vocabulary"},
		{"bad regex", `{"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"},"model":{"type":"BPE","vocab":{},"merges":[]}}`, "regex"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil || !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q and the file", err, c.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "absent")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}

// TestMergeStrategies checks that the linear scan used for short words and
// the priority queue used for long ones merge alike.
func TestMergeStrategies(t *testing.T) {
	for _, name := range []string{"llama2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			tok, cases := loadGolden(t, name)
			m := tok.model.(*bpe)
			for _, c := range cases {
				var pieces []piece
				for _, seg := range tok.rawTrie.split(nil, c.Text) {
					s := seg.s
					if tok.norm != nil {
						s = tok.norm.normalize(s)
					}
					pieces = append(pieces, piece{s: s})
				}
				if tok.pre != nil {
					pieces = tok.pre.preTokenize(context.Background(), pieces)
				}
				for _, p := range pieces {
					if len(p.s) > 200 {
						p.s = p.s[:200]
					}
					sc := &bpeScratch{}
					a := m.initialSymbols(context.Background(), nil, p.s)
					b := slices.Clone(a)
					if len(a) == 0 {
						continue
					}
					m.mergeLinear(sc, a)
					m.mergeHeap(sc, b)
					if !slices.Equal(a, b) {
						t.Fatalf("%q: linear and heap merges differ", p.s)
					}
				}
			}
		})
	}
}

// TestByteModels checks the byte-level tokenizers of the shared models:
// ids are the UTF-8 bytes and decoding gives the text back.
func TestByteModels(t *testing.T) {
	for _, name := range []string{"bytellama", "bytegpt2"} {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(testenv.SharedModel(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if tok.VocabSize() != 256 {
				t.Errorf("VocabSize = %d, want 256", tok.VocabSize())
			}
			for _, text := range []string{"hello\n", "func main() {\n\tfmt.Println(\"héllo, 世界\")\n}\n", "  \x00\u00ff", "\xff\xfe invalid"} {
				ids := tok.Encode(text, true)
				want := make([]int, len(text))
				for i := range len(text) {
					want[i] = int(text[i])
				}
				if !slices.Equal(ids, want) {
					t.Errorf("Encode(%q) = %v, want the bytes %v", text, ids, want)
				}
				if strings.ToValidUTF8(text, "\uFFFD") == text {
					if got := tok.Decode(ids, false); got != text {
						t.Errorf("Decode = %q, want %q", got, text)
					}
				}
			}
		})
	}
}

// TestStreamDecoder feeds the reference encodings one id at a time: the
// pieces are valid UTF-8 and add up to the full decoding.
func TestStreamDecoder(t *testing.T) {
	for name, dir := range goldenDirs() {
		t.Run(name, func(t *testing.T) {
			tok, cases := loadGoldenDir(t, dir(t))
			for i, c := range cases {
				sd := tok.NewStreamDecoder(false)
				var b strings.Builder
				for _, id := range c.IDs {
					s := sd.Next(id)
					if strings.ContainsRune(s, '\uFFFD') && !strings.ContainsRune(c.Text, '\uFFFD') {
						t.Errorf("case %d: piece %q holds a replacement character", i, s)
					}
					b.WriteString(s)
				}
				b.WriteString(sd.Flush())
				if want := tok.decode(c.IDs, false, false); b.String() != want {
					t.Errorf("case %d: stream %.80q, want %.80q", i, b.String(), want)
				}
			}
		})
	}
}

// TestConcurrentEncode encodes from several goroutines at once (run with
// -race): the word cache and scratch buffers are shared.
func TestConcurrentEncode(t *testing.T) {
	tok := byteLevelTokenizer(t, patternCL100K, []string{"Ġ t", "h e", "Ġt he"})
	want := tok.Encode("the theme of the thesis", false)
	done := make(chan []int)
	for range 4 {
		go func() {
			var got []int
			for range 50 {
				got = tok.Encode("the theme of the thesis", false)
			}
			done <- got
		}()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent Encode = %v, want %v", got, want)
		}
	}
}

// TestMetaSpaceChunks checks that cutting SentencePiece words before ▁
// keeps merges that join a character to the ▁ after it.
func TestMetaSpaceChunks(t *testing.T) {
	vocab := []string{"a", "b", "▁", "a▁", "▁b", "a▁b", "<0x3E>"}
	tok := charTokenizer(t, vocab, []string{"a ▁", "a▁ b", "▁ b"}, `,"byte_fallback":true`, "", "")
	m := tok.model.(*bpe)
	if !m.metaChunks || !m.metaGlued['a'] || m.metaGlued['b'] {
		t.Fatalf("metaChunks %v, glued %v: want chunks with only 'a' glued", m.metaChunks, m.metaGlued)
	}
	cases := []struct {
		text string
		want []int
	}{
		{"a▁b", []int{5}},    // a is glued to ▁: no cut, a▁ then a▁b
		{"b▁b", []int{1, 4}}, // cut before ▁: b | ▁b
	}
	for _, c := range cases {
		if got := tok.Encode(c.text, false); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if m.canCutBefore("x▁", 1) {
		t.Error("canCutBefore after a character that is not a token: want false")
	}
}
