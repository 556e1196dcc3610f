package tokenizer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// merge is the result of merging a pair of tokens: its rank (lower merges
// first) and the id of the merged token.
type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpe is the byte-pair-encoding model.
type bpe struct {
	vocab        map[string]int
	merges       *mergeTable
	unk          int // -1 when there is no unknown token
	prefix       string
	suffix       string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int // ids of <0xNN>, -1 when absent
	// metaChunks is set for SentencePiece-style vocabularies (with ▁):
	// a word is then cut before each ▁ that follows a character c that is
	// a token itself and that no token has right before a ▁ (metaGlued
	// holds those), and its chunks are merged, and cached, separately.
	// No merge could have joined c to the ▁, since the merged token would
	// contain c▁.
	metaChunks bool
	metaGlued  map[rune]bool
	// runeIDs holds the ids of the one-character tokens below
	// len(runeIDs) (-1 when absent), when there is no prefix or suffix.
	runeIDs []int32

	mu    sync.Mutex
	cache map[string]cached // word -> its ids in arena
	arena []int32
}

// runeTableSize bounds the code points whose one-character token ids are
// kept in a table; it covers the byte-level alphabet and U+2581 (▁).
const runeTableSize = 0x2600

const (
	bpeCacheWordLen = 256   // longer words are not cached
	bpeCacheEntries = 50000 // the cache is emptied when it reaches this size
)

// newBPE builds the model. merges holds the pairs in rank order.
func newBPE(vocab map[string]int, merges [][2]string, unk string, prefix, suffix string, fuseUnk, byteFallback, ignoreMerges bool) (*bpe, error) {
	m := &bpe{vocab: vocab, merges: newMergeTable(len(merges)), unk: -1, prefix: prefix, suffix: suffix,
		fuseUnk: fuseUnk, byteFallback: byteFallback, ignoreMerges: ignoreMerges, cache: map[string]cached{}}
	if unk != "" {
		id, ok := vocab[unk]
		if !ok {
			return nil, fmt.Errorf("BPE unk_token %q is not in the vocabulary", unk)
		}
		m.unk = id
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	if prefix == "" && suffix == "" {
		m.runeIDs = make([]int32, runeTableSize)
		for r := range m.runeIDs {
			m.runeIDs[r] = -1
			if id, ok := vocab[string(rune(r))]; ok && utf8.ValidRune(rune(r)) {
				m.runeIDs[r] = int32(id)
			}
		}
	}
	if _, ok := vocab[metaSpace]; ok && prefix == "" && suffix == "" {
		m.metaChunks, m.metaGlued = true, map[rune]bool{}
		for tok := range vocab {
			for off := 0; ; {
				i := strings.Index(tok[off:], metaSpace)
				if i < 0 {
					break
				}
				if r, _ := utf8.DecodeLastRuneInString(tok[:off+i]); off+i > 0 && r != '\u2581' {
					m.metaGlued[r] = true
				}
				off += i + len(metaSpace)
			}
		}
	}
	for rank, p := range merges {
		a, ok1 := vocab[p[0]]
		b, ok2 := vocab[p[1]]
		// As in Hugging Face, the right part loses the length of the
		// continuing-subword prefix.
		merged := p[0] + p[1][min(len(prefix), len(p[1])):]
		id, ok3 := vocab[merged]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("BPE merge %d (%q %q): token not in the vocabulary", rank, p[0], p[1])
		}
		m.merges.putIfAbsent(pairKey(int32(a), int32(b)), merge{int32(rank), int32(id)})
	}
	return m, nil
}

// metaSpace is SentencePiece's visible space, U+2581.
const metaSpace = "\u2581"

// tokenize appends the ids of one pre-tokenized word to dst.
func (m *bpe) tokenize(ctx context.Context, dst []int, word string) []int {
	if word == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	if !m.metaChunks {
		return m.tokenizeChunk(ctx, dst, word)
	}
	// Cut before each ▁ that follows a character no merge glues to it.
	start, chunks := 0, 0
	for i := 1; i < len(word); {
		j := strings.Index(word[i:], metaSpace)
		if j < 0 {
			break
		}
		i += j
		if m.canCutBefore(word, i) {
			if chunks++; chunks%cancelCheckPieces == 0 {
				checkCtx(ctx)
			}
			dst = m.tokenizeChunk(ctx, dst, word[start:i])
			start = i
		}
		i += len(metaSpace)
	}
	return m.tokenizeChunk(ctx, dst, word[start:])
}

// canCutBefore reports whether word can be cut before the ▁ at i (see
// metaChunks).
func (m *bpe) canCutBefore(word string, i int) bool {
	r, size := utf8.DecodeLastRuneInString(word[:i])
	if r == '\u2581' || m.metaGlued[r] || (r == utf8.RuneError && size <= 1) {
		return false
	}
	if int(r) < len(m.runeIDs) {
		return m.runeIDs[r] >= 0
	}
	_, ok := m.vocab[word[i-size:i]]
	return ok
}

// tokenizeChunk tokenizes a word, or a chunk of a word, through the cache.
func (m *bpe) tokenizeChunk(ctx context.Context, dst []int, word string) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	cacheable := len(word) <= bpeCacheWordLen
	if cacheable {
		m.mu.Lock()
		c, ok := m.cache[word]
		if ok {
			for _, id := range m.arena[c.off : c.off+c.n] {
				dst = append(dst, int(id))
			}
		}
		m.mu.Unlock()
		if ok {
			return dst
		}
	}
	n := len(dst)
	dst = m.mergeWord(ctx, dst, word)
	if cacheable {
		m.mu.Lock()
		if len(m.cache) >= bpeCacheEntries {
			clear(m.cache)
			m.arena = m.arena[:0]
		}
		c := cached{off: uint32(len(m.arena)), n: uint32(len(dst) - n)}
		for _, id := range dst[n:] {
			m.arena = append(m.arena, int32(id))
		}
		// The key is copied so that the cache does not keep the text alive.
		m.cache[strings.Clone(word)] = c
		m.mu.Unlock()
	}
	return dst
}

// cached locates the ids of a cached word in the arena.
type cached struct{ off, n uint32 }

// symbol is one token of a word being merged, in a doubly linked list.
type symbol struct {
	id         int32
	prev, next int32
	alive      bool
}

// mergeItem is a candidate merge of the symbol at pos with its successor.
type mergeItem struct{ rank, pos, id int32 }

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap is a binary min-heap of candidate merges.
type mergeHeap []mergeItem

func (h *mergeHeap) push(it mergeItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[small]) {
			small = l
		}
		if r < len(s) && s[r].less(s[small]) {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}

// initialSymbols splits a word into per-character tokens, with byte
// fallback and unknown-token handling as Hugging Face does.
func (m *bpe) initialSymbols(ctx context.Context, syms []symbol, word string) []symbol {
	add := func(id int) { syms = append(syms, symbol{id: int32(id), alive: true}) }
	unk, unkPending := 0, false
	next := cancelCheckBytes
	for i := 0; i < len(word); {
		if i >= next {
			checkCtx(ctx)
			next += cancelCheckBytes
		}
		r, size := utf8.DecodeRuneInString(word[i:])
		if int(r) < len(m.runeIDs) && m.runeIDs[r] >= 0 && (size > 1 || r != utf8.RuneError) {
			if unkPending {
				add(unk)
				unkPending = false
			}
			add(int(m.runeIDs[r]))
			i += size
			continue
		}
		s := word[i : i+size]
		if m.prefix != "" && i > 0 {
			s = m.prefix + s
		}
		if m.suffix != "" && i+size == len(word) {
			s += m.suffix
		}
		i += size
		if id, ok := m.vocab[s]; ok {
			if unkPending {
				add(unk)
				unkPending = false
			}
			add(id)
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				for k := 0; k < len(s); k++ {
					add(m.byteIDs[s[k]])
				}
				continue
			}
		}
		if m.unk >= 0 {
			if unkPending && !m.fuseUnk {
				add(unk)
			}
			unk, unkPending = m.unk, true
		}
	}
	if unkPending {
		add(unk)
	}
	for i := range syms {
		syms[i].prev = int32(i - 1)
		syms[i].next = int32(i + 1)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

// bpeScratch holds the buffers of one mergeWord call, and its context
// (nil: not checked).
type bpeScratch struct {
	ctx   context.Context
	syms  []symbol
	ranks []merge
	heap  mergeHeap
}

var scratchPool = sync.Pool{New: func() any { return new(bpeScratch) }}

// maxPooledSymbols bounds the symbols of the scratch buffers kept in
// scratchPool for the next word.
const maxPooledSymbols = 1 << 16

// linearMergeLimit is the word length (in initial symbols) up to which the
// best merge is found by scanning the cached pair ranks instead of through
// a heap: quadratic, but faster for the short words of ordinary text.
const linearMergeLimit = 48

// noMerge marks a pair that has no merge.
var noMerge = merge{rank: 1<<31 - 1, id: -1}

// mergeWord applies the merges to a word, lowest rank first and leftmost
// first among equal ranks, and appends the resulting ids to dst.
func (m *bpe) mergeWord(ctx context.Context, dst []int, word string) []int {
	sc := scratchPool.Get().(*bpeScratch)
	defer func() {
		sc.ctx = nil
		if cap(sc.syms) > maxPooledSymbols {
			// A very long word's buffers are not kept for the next one.
			sc.syms, sc.ranks, sc.heap = nil, nil, nil
		}
		scratchPool.Put(sc)
	}()
	sc.ctx = ctx
	syms := m.initialSymbols(ctx, sc.syms[:0], word)
	sc.syms = syms
	if len(word) > cancelCheckMerges {
		checkCtx(ctx)
	}
	switch {
	case len(syms) == 0:
	case len(syms) <= linearMergeLimit:
		m.mergeLinear(sc, syms)
	default:
		m.mergeHeap(sc, syms)
	}
	for _, s := range syms {
		if s.alive {
			dst = append(dst, int(s.id))
		}
	}
	return dst
}

func (m *bpe) pairMerge(a, b int32) merge {
	if mg, ok := m.merges.get(pairKey(a, b)); ok {
		return mg
	}
	return noMerge
}

// mergeLinear merges by scanning ranks[i], the merge of the live symbol i
// with its successor.
func (m *bpe) mergeLinear(sc *bpeScratch, syms []symbol) {
	ranks := sc.ranks[:0]
	for i := range syms {
		if i+1 < len(syms) {
			ranks = append(ranks, m.pairMerge(syms[i].id, syms[i+1].id))
		} else {
			ranks = append(ranks, noMerge)
		}
	}
	sc.ranks = ranks
	for {
		best := int32(-1)
		for i := int32(0); i >= 0; i = syms[i].next {
			if ranks[i].id >= 0 && (best < 0 || ranks[i].rank < ranks[best].rank) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		cur := &syms[best]
		next := cur.next
		cur.id = ranks[best].id
		syms[next].alive = false
		cur.next = syms[next].next
		if cur.next >= 0 {
			syms[cur.next].prev = best
			ranks[best] = m.pairMerge(cur.id, syms[cur.next].id)
		} else {
			ranks[best] = noMerge
		}
		if cur.prev >= 0 {
			ranks[cur.prev] = m.pairMerge(syms[cur.prev].id, cur.id)
		}
	}
}

// cancelCheckMerges is how many merges of one word mergeHeap makes
// between checks of the context, and cancelCheckBytes how many bytes of
// a word initialSymbols reads between them.
const (
	cancelCheckMerges = 1 << 16
	cancelCheckBytes  = 1 << 20
)

// mergeHeap merges through a priority queue of candidate merges, skipping
// entries made stale by earlier merges.
func (m *bpe) mergeHeap(sc *bpeScratch, syms []symbol) {
	h := sc.heap[:0]
	defer func() { sc.heap = h[:0] }()
	for i := 0; i+1 < len(syms); i++ {
		if i%cancelCheckMerges == 0 {
			checkCtx(sc.ctx)
		}
		if mg, ok := m.merges.get(pairKey(syms[i].id, syms[i+1].id)); ok {
			h.push(mergeItem{mg.rank, int32(i), mg.id})
		}
	}
	for n := 1; len(h) > 0; n++ {
		if n%cancelCheckMerges == 0 {
			checkCtx(sc.ctx)
		}
		top := h.pop()
		cur := &syms[top.pos]
		if !cur.alive || cur.next < 0 {
			continue
		}
		right := syms[cur.next]
		if mg, ok := m.merges.get(pairKey(cur.id, right.id)); !ok || mg.id != top.id {
			continue // stale entry
		}
		cur.id = top.id
		syms[cur.next].alive = false
		cur.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg, ok := m.merges.get(pairKey(syms[cur.prev].id, cur.id)); ok {
				h.push(mergeItem{mg.rank, cur.prev, mg.id})
			}
		}
		if cur.next >= 0 {
			if mg, ok := m.merges.get(pairKey(cur.id, syms[cur.next].id)); ok {
				h.push(mergeItem{mg.rank, top.pos, mg.id})
			}
		}
	}
}
