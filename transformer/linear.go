package transformer

import "github.com/vlora-convert/vlora-convert/internal/kernels"

// gemmOpts returns the Sgemm options for a pass using workers goroutines.
func gemmOpts(workers int) kernels.Options { return kernels.Options{Threads: workers} }

// forward computes y = x·Wᵀ + beta·y for the n rows of x (row stride ldx)
// into y (row stride ldy), without the bias.
func (l *linear) forward(o kernels.Options, n int, x []float32, ldx int, y []float32, ldy int, beta float32) {
	if n == 1 && l.op != nil {
		if _, ok := l.op.(rowTermer); ok {
			forwardRow(o, x, []rowOut{{l, y, beta}})
			return
		}
	}
	l.forwardEach(o, n, x, ldx, y, ldy, beta)
}

// forwardEach is forward without the grouping of one-row products.
func (l *linear) forwardEach(o kernels.Options, n int, x []float32, ldx int, y []float32, ldy int, beta float32) {
	if l.op != nil {
		l.op.MulT(o.Threads, n, x, ldx, y, ldy, beta)
		return
	}
	if l.inOut {
		o.Sgemm(false, false, n, l.out, l.in, 1, x, ldx, l.w.Data, l.out, beta, y, ldy)
	} else {
		o.Sgemm(false, true, n, l.out, l.in, 1, x, ldx, l.w.Data, l.in, beta, y, ldy)
	}
}

// backwardInput computes dx = dy·W + beta·dx for n rows.
func (l *linear) backwardInput(o kernels.Options, n int, dy []float32, ldy int, dx []float32, lddx int, beta float32) {
	if l.inOut {
		o.Sgemm(false, true, n, l.in, l.out, 1, dy, ldy, l.w.Data, l.out, beta, dx, lddx)
	} else {
		o.Sgemm(false, false, n, l.in, l.out, 1, dy, ldy, l.w.Data, l.in, beta, dx, lddx)
	}
}

// backwardWeight adds the weight gradient dyᵀ·x (stored like W) to dw.
func (l *linear) backwardWeight(o kernels.Options, n int, x []float32, ldx int, dy []float32, ldy int, dw []float32) {
	if l.inOut {
		o.Sgemm(true, false, l.in, l.out, n, 1, x, ldx, dy, ldy, 1, dw, l.out)
	} else {
		o.Sgemm(true, false, l.out, l.in, n, 1, dy, ldy, x, ldx, 1, dw, l.in)
	}
}

// addRows adds v to the first len(v) columns of each of the n rows of y
// (row stride ld).
func addRows(workers, n int, y []float32, ld int, v []float32) {
	forChunks(workers, n, 256, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			r := y[i*ld : i*ld+len(v)]
			for j, b := range v {
				r[j] += b
			}
		}
	})
}

// columnSums adds to dst the sums over the n rows of dy (row stride ld) of
// the columns off..off+len(dst)−1, accumulating in float64.
func columnSums(workers, n int, dy []float32, ld, off int, dst []float32) {
	w := len(dst)
	parts := make([][]float64, workers)
	chunks := forChunks(workers, n, 256, func(c, lo, hi int) {
		s := make([]float64, w)
		for i := lo; i < hi; i++ {
			r := dy[i*ld+off : i*ld+off+w]
			for j, v := range r {
				s[j] += float64(v)
			}
		}
		parts[c] = s
	})
	for c := range chunks {
		for j, v := range parts[c] {
			dst[j] += float32(v)
		}
	}
}

// rowTermer is implemented by the operators whose one-row products can be
// written as kernels.RowProduct terms, for forwardRow.
type rowTermer interface {
	// rowTerms appends the terms of y = x·Wᵀ + beta·y to first (those
	// that read x) and second (those that read the outputs of first, run
	// after them), and reports whether the operator is made of stored
	// matrices only (false: nothing was appended).
	rowTerms(x, y []float32, beta float32, first, second []kernels.RowProduct) ([]kernels.RowProduct, []kernels.RowProduct, bool)
}

// rowOut is one product of forwardRow: y = x·Wᵀ + beta·y for the linear l.
type rowOut struct {
	l    *linear
	y    []float32
	beta float32
}

// forwardRow computes the one-row products outs of the same input row x
// (a decoding step of one sequence): when every operator is made of stored
// matrices, the terms that read x (dense matrices, VLoRA bases and first
// factors) go out as one banded job of kernels.MulStoredRow and the terms
// that read their outputs (second factors) as a second one, so that a
// step's products cost two hand-offs between threads per group rather than
// one or three per matrix. The results are bit for bit those of forward
// on each linear in turn. Otherwise the products run one after another.
func forwardRow(o kernels.Options, x []float32, outs []rowOut) {
	var first, second []kernels.RowProduct
	for _, r := range outs {
		rt, ok := r.l.op.(rowTermer)
		if ok {
			first, second, ok = rt.rowTerms(x, r.y, r.beta, first, second)
		}
		if !ok {
			for _, r := range outs {
				r.l.forwardEach(o, 1, x, r.l.in, r.y, r.l.out, r.beta)
			}
			return
		}
	}
	o.MulStoredRow(first)
	if len(second) > 0 {
		o.MulStoredRow(second)
	}
}

func (s storedOp) rowTerms(x, y []float32, beta float32, first, second []kernels.RowProduct) ([]kernels.RowProduct, []kernels.RowProduct, bool) {
	return append(first, kernels.RowProduct{X: x, W: s.w, Y: y, Beta: beta}), second, true
}

// rowTerms gives base (with beta) and A (into a temporary t) as first
// terms and B·t (or the dense increment, with beta 1 after the base) as a
// second, the order of MulT.
func (s *sumOp) rowTerms(x, y []float32, beta float32, first, second []kernels.RowProduct) ([]kernels.RowProduct, []kernels.RowProduct, bool) {
	var base, a *kernels.Stored
	if s.base != nil {
		b, ok := s.base.(storedOp)
		if !ok {
			return first, second, false
		}
		base = b.w
	}
	if s.a != nil {
		op, ok := s.a.(storedOp)
		if !ok {
			return first, second, false
		}
		a = op.w
	}
	b, ok := s.b.(storedOp)
	if !ok {
		return first, second, false
	}
	if base != nil {
		first = append(first, kernels.RowProduct{X: x, W: base, Y: y, Beta: beta})
		beta = 1
	}
	if a == nil {
		return first, append(second, kernels.RowProduct{X: x, W: b.w, Y: y, Beta: beta}), true
	}
	t := make([]float32, a.Rows)
	first = append(first, kernels.RowProduct{X: x, W: a, Y: t, Beta: 0})
	return first, append(second, kernels.RowProduct{X: t, W: b.w, Y: y, Beta: beta}), true
}
