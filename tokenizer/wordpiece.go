package tokenizer

import (
	"context"
	"fmt"
	"unicode/utf8"
)

// wordPiece is the WordPiece model (BERT): greedy longest-match-first
// segmentation of each word into vocabulary entries, continuation pieces
// carrying a prefix ("##").
type wordPiece struct {
	vocab   map[string]int
	unk     int
	prefix  string
	maxChar int
}

func newWordPiece(vocab map[string]int, unk, prefix string, maxChars int) (*wordPiece, error) {
	id, ok := vocab[unk]
	if !ok {
		return nil, fmt.Errorf("WordPiece unk_token %q is not in the vocabulary", unk)
	}
	if maxChars <= 0 {
		maxChars = 100
	}
	return &wordPiece{vocab: vocab, unk: id, prefix: prefix, maxChar: maxChars}, nil
}

func (w *wordPiece) tokenize(_ context.Context, dst []int, word string) []int {
	if word == "" {
		return dst
	}
	if utf8.RuneCountInString(word) > w.maxChar {
		return append(dst, w.unk)
	}
	n := len(dst)
	for start := 0; start < len(word); {
		end, found := len(word), -1
		for end > start {
			s := word[start:end]
			if start > 0 {
				s = w.prefix + s
			}
			if id, ok := w.vocab[s]; ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if found < 0 {
			return append(dst[:n], w.unk)
		}
		dst = append(dst, found)
		start = end
	}
	return dst
}
