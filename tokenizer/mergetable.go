package tokenizer

import "math/bits"

// mergeTable maps a pair of token ids to its merge: an open-addressing
// hash table with linear probing, smaller and faster to probe than a Go
// map for the hundreds of thousands of merges of large vocabularies.
type mergeTable struct {
	keys  []uint64 // pairKey, or emptyKey
	vals  []merge
	shift uint8
}

// emptyKey marks a free slot; no pair of non-negative int32 ids has it.
const emptyKey = ^uint64(0)

func newMergeTable(n int) *mergeTable {
	size := 1 << bits.Len(uint(2*n+1)) // load factor at most 1/2
	t := &mergeTable{keys: make([]uint64, size), vals: make([]merge, size), shift: uint8(64 - bits.Len(uint(size-1)))}
	for i := range t.keys {
		t.keys[i] = emptyKey
	}
	return t
}

func (t *mergeTable) slot(k uint64) int {
	return int((k * 0x9E3779B97F4A7C15) >> t.shift)
}

// get returns the merge of pair k.
func (t *mergeTable) get(k uint64) (merge, bool) {
	mask := len(t.keys) - 1
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case emptyKey:
			return merge{}, false
		}
	}
}

// putIfAbsent stores the merge of pair k unless k is already present.
func (t *mergeTable) putIfAbsent(k uint64, m merge) {
	mask := len(t.keys) - 1
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return
		case emptyKey:
			t.keys[i], t.vals[i] = k, m
			return
		}
	}
}
