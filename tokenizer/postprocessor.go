package tokenizer

// postProcessor adds the special tokens of a single sequence (BOS, CLS,
// SEP, ...) around its ids.
type postProcessor interface {
	process(ids []int) []int
	// specials returns the ids the processor puts before and after the
	// sequence.
	specials() (before, after []int)
}

// templateProc is TemplateProcessing with its single-sequence template,
// already resolved to ids.
type templateProc struct{ before, after []int }

func (t templateProc) process(ids []int) []int {
	out := make([]int, 0, len(t.before)+len(ids)+len(t.after))
	out = append(out, t.before...)
	out = append(out, ids...)
	return append(out, t.after...)
}

func (t templateProc) specials() (before, after []int) { return t.before, t.after }

// identityProc is a processor that adds nothing (ByteLevel: it only adjusts
// offsets, which this package does not track).
type identityProc struct{}

func (identityProc) process(ids []int) []int         { return ids }
func (identityProc) specials() (before, after []int) { return nil, nil }

// procSeq applies processors in order.
type procSeq []postProcessor

func (seq procSeq) process(ids []int) []int {
	for _, p := range seq {
		ids = p.process(ids)
	}
	return ids
}

func (seq procSeq) specials() (before, after []int) {
	for _, p := range seq {
		b, a := p.specials()
		before = append(append([]int(nil), b...), before...)
		after = append(after, a...)
	}
	return before, after
}
