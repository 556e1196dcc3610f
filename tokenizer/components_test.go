package tokenizer

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// preTokenize runs a pre-tokenizer built from its JSON form on s.
func preTokenize(t *testing.T, js, s string) []string {
	t.Helper()
	p, err := buildPreTokenizer(json.RawMessage(js), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, pc := range p.preTokenize(context.Background(), []piece{{s: s, first: true}}) {
		out = append(out, pc.s)
	}
	return out
}

func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		name, json, in string
		want           []string
	}{
		{"whitespace", `{"type":"Whitespace"}`, "Hey man!! How's it going?", []string{"Hey", "man", "!!", "How", "'", "s", "it", "going", "?"}},
		{"whitespace split", `{"type":"WhitespaceSplit"}`, "Hey  man!!\tok ", []string{"Hey", "man!!", "ok"}},
		{"bert", `{"type":"BertPreTokenizer"}`, "Hey friend!  How are you?!?", []string{"Hey", "friend", "!", "How", "are", "you", "?", "!", "?"}},
		{"punctuation", `{"type":"Punctuation","behavior":"Isolated"}`, "Hey friend! How?", []string{"Hey friend", "!", " How", "?"}},
		{"punctuation contiguous", `{"type":"Punctuation","behavior":"Contiguous"}`, "a!?b", []string{"a", "!?", "b"}},
		{"digits individual", `{"type":"Digits","individual_digits":true}`, "Hey 123 friend!", []string{"Hey ", "1", "2", "3", " friend!"}},
		{"digits runs", `{"type":"Digits","individual_digits":false}`, "Hey 123 friend45", []string{"Hey ", "123", " friend", "45"}},
		{"split isolated", `{"type":"Split","pattern":{"String":"-"},"behavior":"Isolated","invert":false}`, "the-final--countdown", []string{"the", "-", "final", "-", "-", "countdown"}},
		{"split removed", `{"type":"Split","pattern":{"String":"-"},"behavior":"Removed","invert":false}`, "the-final--countdown", []string{"the", "final", "countdown"}},
		{"split merged with previous", `{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithPrevious","invert":false}`, "the-final--countdown", []string{"the-", "final-", "-", "countdown"}},
		{"split merged with next", `{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithNext","invert":false}`, "the-final--countdown", []string{"the", "-final", "-", "-countdown"}},
		{"split contiguous", `{"type":"Split","pattern":{"String":"-"},"behavior":"Contiguous","invert":false}`, "the-final--countdown", []string{"the", "-", "final", "--", "countdown"}},
		{"split regex invert", `{"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Removed","invert":true}`, "a12b345c", []string{"12", "345"}},
		{"split regex lookahead", `{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false}`, "a   b ", []string{"a", "  ", " ", "b", " "}},
		{"metaspace always", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}`, "Hey friend", []string{"▁Hey", "▁friend"}},
		{"metaspace no split", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":false}`, "Hey  friend", []string{"▁Hey▁▁friend"}},
		{"metaspace never", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"never","split":true}`, "Hey friend", []string{"Hey", "▁friend"}},
		{"metaspace legacy", `{"type":"Metaspace","replacement":"▁","add_prefix_space":true}`, "Hey", []string{"▁Hey"}},
		{"byte level", `{"type":"ByteLevel","add_prefix_space":true,"use_regex":true}`, "Hello my friend, how is your day going?", []string{"ĠHello", "Ġmy", "Ġfriend", ",", "Ġhow", "Ġis", "Ġyour", "Ġday", "Ġgoing", "?"}},
		{"byte level no regex", `{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}`, "a b\n", []string{"aĠbĊ"}},
		{"sequence", `{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Digits","individual_digits":true}]}`, "ab12 c", []string{"ab", "1", "2", "c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := preTokenize(t, c.json, c.in); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestMetaspaceFirst(t *testing.T) {
	p, err := buildPreTokenizer(json.RawMessage(`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := p.preTokenize(context.Background(), []piece{{s: "a b", first: true}, {s: "c", first: false}})
	if got[0].s != "▁a▁b" || got[1].s != "c" {
		t.Errorf("got %q %q, want ▁a▁b c", got[0].s, got[1].s)
	}
}

func TestNormalizers(t *testing.T) {
	cases := []struct {
		name, json, in, want string
	}{
		{"nfc", `{"type":"NFC"}`, "e\u0301", "é"},
		{"nfd", `{"type":"NFD"}`, "é", "e\u0301"},
		{"nfkc", `{"type":"NFKC"}`, "ﬁ①", "fi1"},
		{"lowercase", `{"type":"Lowercase"}`, "HeLLo ÜBER", "hello über"},
		{"replace string", `{"type":"Replace","pattern":{"String":" "},"content":"▁"}`, "a b  c", "a▁b▁▁c"},
		{"replace regex", `{"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}`, "a  b    c", "a b c"},
		{"prepend", `{"type":"Prepend","prepend":"▁"}`, "ab", "▁ab"},
		{"prepend empty", `{"type":"Prepend","prepend":"▁"}`, "", ""},
		{"strip both", `{"type":"Strip","strip_left":true,"strip_right":true}`, "  a b \n", "a b"},
		{"strip left", `{"type":"Strip","strip_left":true,"strip_right":false}`, "  a ", "a "},
		{"strip accents", `{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"}]}`, "café", "cafe"},
		{"bert", `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}`, "Héllo\tWORLD\x00中文", "hello world 中  文 "},
		{"bert keep case", `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":false,"strip_accents":false,"lowercase":false}`, "Héllo\u200b\nX", "Héllo X"},
		{"sequence", `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`, "Hi you", "▁Hi▁you"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := buildNormalizer(json.RawMessage(c.json), 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.normalize(c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDecoders(t *testing.T) {
	cases := []struct {
		name, json string
		in         []string
		want       string
	}{
		{"byte level", `{"type":"ByteLevel"}`, []string{"Hello", "Ġwor", "ld", "Ċ", "ä¸", "ĸ"}, "Hello world\n世"},
		{"byte level incomplete", `{"type":"ByteLevel"}`, []string{"a", "ä¸"}, "a\uFFFD"},
		{"metaspace", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"}`, []string{"▁Hey", "▁friend", "!"}, "Hey friend!"},
		{"metaspace never", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`, []string{"▁Hey", "▁friend"}, " Hey friend"},
		{"byte fallback", `{"type":"ByteFallback"}`, []string{"a", "<0xE4>", "<0xB8>", "<0x96>", "b"}, "a世b"},
		{"byte fallback invalid", `{"type":"ByteFallback"}`, []string{"<0xE4>", "<0xB8>", "b"}, "\uFFFD\uFFFDb"},
		{"strip", `{"type":"Strip","content":" ","start":1,"stop":1}`, []string{"  a ", " b"}, " ab"},
		{"replace", `{"type":"Replace","pattern":{"String":"▁"},"content":" "}`, []string{"▁a", "▁b"}, " a b"},
		{"wordpiece", `{"type":"WordPiece","prefix":"##","cleanup":true}`, []string{"un", "##aff", "##able", "day", "."}, "unaffable day."},
		{"wordpiece no cleanup", `{"type":"WordPiece","prefix":"##","cleanup":false}`, []string{"a", "."}, "a ."},
		{"llama 2 sequence", `{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`,
			[]string{"▁Hello", "▁", "<0xE4>", "<0xB8>", "<0x96>"}, "Hello 世"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := buildDecoder(json.RawMessage(c.json), 0)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, s := range d.decodeChain(c.in) {
				got += s
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestPostProcessors(t *testing.T) {
	cases := []struct {
		name, json string
		want       []int
	}{
		{"template", `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],
			"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}`, []int{1, 7, 8, 2}},
		{"bert", `{"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]}`, []int{101, 7, 8, 102}},
		{"roberta", `{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":true}`, []int{0, 7, 8, 2}},
		{"byte level", `{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}`, []int{7, 8}},
		{"sequence", `{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]}]}`, []int{101, 7, 8, 102}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := buildPostProcessor(json.RawMessage(c.json), 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.process([]int{7, 8}); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"a\xe4\xb8", "a\uFFFD"},
		{"\xe4\xb8a", "\uFFFDa"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xf0\x9f\x98\x80\xc3", "😀\uFFFD"},
		{"\xe0\x80", "\uFFFD\uFFFD"},
	}
	for _, c := range cases {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestToLower(t *testing.T) {
	cases := []struct{ in, want string }{
		{"HeLLo", "hello"},
		{"İstanbul", "i\u0307stanbul"},
		{"ΟΔΟΣ ΣΑ", "οδος σα"},
		{"Σ", "σ"},
	}
	for _, c := range cases {
		if got := toLower(c.in); got != c.want {
			t.Errorf("toLower(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRewritePossessive(t *testing.T) {
	cases := []struct{ in, want string }{
		{`\s+(?!\S)|\s+`, `\s+(?!\S)|\s+`},
		{`a++b`, `(?>a+)b`},
		{`\p{L}*+x`, `(?>\p{L}*)x`},
		{`[^\s\p{L}]?+\p{N}`, `(?>[^\s\p{L}]?)\p{N}`},
		{`(ab|c)++`, `(?>(ab|c)+)`},
		{`x{1,3}+y`, `(?>x{1,3})y`},
		{`[a+]+`, `[a+]+`},
		{`\++`, `\++`},
		{`é++`, `(?>é+)`},
	}
	for _, c := range cases {
		if got := rewritePossessive(c.in); got != c.want {
			t.Errorf("rewritePossessive(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Possessive matching gives up no characters: a*+a never matches.
	m, err := compilePattern(`a*+a|b`)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.find(nil, "aaab"); !slices.Equal(got, [][2]int{{3, 4}}) {
		t.Errorf("a*+a|b on aaab: %v, want [[3 4]]", got)
	}
}
