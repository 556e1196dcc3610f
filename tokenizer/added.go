package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: a string that is
// matched in the text before the model runs and always maps to one id.
type addedToken struct {
	Content    string `json:"content"`
	ID         int    `json:"id"`
	Special    bool   `json:"special"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Normalized bool   `json:"normalized"`
}

// segment is a part of the text: plain text (id < 0) or an added token.
type segment struct {
	s  string
	id int
}

// tokenTrie finds added tokens in text, leftmost-longest.
type tokenTrie struct {
	nodes []trieNode
	toks  []addedToken
	first [256]bool // bytes that start a token
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index in toks, -1 when no token ends here
}

// newTokenTrie indexes toks by the given strings (their content, or their
// normalized content).
func newTokenTrie(toks []addedToken, keys []string) *tokenTrie {
	t := &tokenTrie{nodes: []trieNode{{tok: -1}}, toks: toks}
	for i, k := range keys {
		if k == "" {
			continue
		}
		n := int32(0)
		for j := 0; j < len(k); j++ {
			c := k[j]
			nx, ok := t.nodes[n].next[c]
			if !ok {
				if t.nodes[n].next == nil {
					t.nodes[n].next = map[byte]int32{}
				}
				nx = int32(len(t.nodes))
				t.nodes[n].next[c] = nx
				t.nodes = append(t.nodes, trieNode{tok: -1})
			}
			n = nx
		}
		t.first[k[0]] = true
		if t.nodes[n].tok < 0 {
			t.nodes[n].tok = int32(i)
		}
	}
	return t
}

// longest returns the token index and end of the longest token starting at
// s[i], or -1.
func (t *tokenTrie) longest(s string, i int) (int, int) {
	tok, end, n := -1, 0, int32(0)
	for j := i; j < len(s); j++ {
		nx, ok := t.nodes[n].next[s[j]]
		if !ok {
			break
		}
		n = nx
		if t.nodes[n].tok >= 0 {
			tok, end = int(t.nodes[n].tok), j+1
		}
	}
	return tok, end
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

// split cuts s into text and added-token segments. Whitespace next to a
// token with lstrip/rstrip is absorbed by the token; a single_word token
// only matches between non-word characters.
func (t *tokenTrie) split(dst []segment, s string) []segment {
	if t == nil || len(t.nodes[0].next) == 0 {
		return append(dst, segment{s, -1})
	}
	textStart := 0
	for i := 0; i < len(s); {
		if !t.first[s[i]] {
			i++
			continue
		}
		k, end := t.longest(s, i)
		if k < 0 {
			i++
			continue
		}
		tok := t.toks[k]
		start := i
		if tok.SingleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:start])
			after, _ := utf8.DecodeRuneInString(s[end:])
			if (start > 0 && isWordChar(before)) || (end < len(s) && isWordChar(after)) {
				i = end
				continue
			}
		}
		if tok.LStrip {
			for start > textStart {
				r, size := utf8.DecodeLastRuneInString(s[textStart:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= size
			}
		}
		if tok.RStrip {
			for end < len(s) {
				r, size := utf8.DecodeRuneInString(s[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += size
			}
		}
		if start > textStart {
			dst = append(dst, segment{s[textStart:start], -1})
		}
		dst = append(dst, segment{tok.Content, tok.ID})
		textStart, i = end, end
	}
	if textStart < len(s) {
		dst = append(dst, segment{s[textStart:], -1})
	}
	return dst
}
