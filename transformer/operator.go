package transformer

import (
	"errors"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// Operator is a weight matrix W (out × in, the [out, in] layout of a
// Hugging Face Linear or embedding) kept in the form it is stored in, whose
// products are computed without building W in float32: a dense matrix in
// its stored dtype (BF16, F16, F32 or quantized codes), or a VLoRA layer's
// base plus its increment B·A, applied as x·baseᵀ + (x·Aᵀ)·Bᵀ.
type Operator interface {
	// Shape returns [out, in].
	Shape() (out, in int)
	// MulT computes y = x·Wᵀ + beta·y for the n rows of x (row stride ldx)
	// into y (row stride ldy), with at most threads goroutines; beta = 0
	// overwrites y.
	MulT(threads, n int, x []float32, ldx int, y []float32, ldy int, beta float32)
	// Row writes row r of W into dst (out of range r panics).
	Row(r int, dst []float32)
	// Bytes returns the stored bytes a product reads.
	Bytes() int64
}

// Operators is implemented by Weights sources that keep matrices in their
// stored form. LoadOperators asks it for every linear layer's weight and for
// the token embeddings; a name it has no operator for (nil, nil) is read
// through Tensor as usual. An error (a tensor that cannot be read, or holds
// non-finite values) fails the load.
type Operators interface {
	Operator(name string) (Operator, error)
}

// NewStoredOperator returns the Operator of the stored matrix w, which it
// keeps (w.Raw may be a view of a memory-mapped file). w must pass Check.
func NewStoredOperator(w *kernels.Stored) (Operator, error) {
	if err := w.Check(); err != nil {
		return nil, fmt.Errorf("transformer: %w: %v", formats.ErrInvalid, err)
	}
	return storedOp{w}, nil
}

// storedOp is a dense matrix in its stored encoding.
type storedOp struct{ w *kernels.Stored }

func (s storedOp) Shape() (int, int) { return s.w.Rows, s.w.Cols }
func (s storedOp) MulT(threads, n int, x []float32, ldx int, y []float32, ldy int, beta float32) {
	kernels.Options{Threads: threads}.MulStored(n, x, ldx, s.w, y, ldy, beta)
}
func (s storedOp) Row(r int, dst []float32) { s.w.DecodeRows(r, r+1, dst) }
func (s storedOp) Bytes() int64             { return s.w.Bytes() }

// NewSumOperator returns the Operator of base + B·A (b is out × r, a is
// r × in), or of base + delta when a is nil (b then being the dense
// increment, out × in). base may be nil (a zero base). Products apply the
// terms one after another and never form their sum.
func NewSumOperator(base, b, a Operator) (Operator, error) {
	if b == nil {
		if base == nil {
			return nil, fmt.Errorf("transformer: %w: an operator with no terms", formats.ErrInvalid)
		}
		return base, nil
	}
	out, in := b.Shape()
	if a != nil {
		r, ain := a.Shape()
		if r != in {
			return nil, fmt.Errorf("transformer: %w: factors %d×%d and %d×%d do not chain", formats.ErrInvalid, out, in, r, ain)
		}
		in = ain
	}
	if base != nil {
		if bo, bi := base.Shape(); bo != out || bi != in {
			return nil, fmt.Errorf("transformer: %w: base %d×%d and increment %d×%d differ", formats.ErrInvalid, bo, bi, out, in)
		}
	}
	return &sumOp{base: base, b: b, a: a, out: out, in: in}, nil
}

// sumOp is base + B·A, or base + delta (a == nil, b the delta).
type sumOp struct {
	base, b, a Operator
	out, in    int
}

func (s *sumOp) Shape() (int, int) { return s.out, s.in }

func (s *sumOp) MulT(threads, n int, x []float32, ldx int, y []float32, ldy int, beta float32) {
	if s.base != nil {
		s.base.MulT(threads, n, x, ldx, y, ldy, beta)
		beta = 1
	}
	if s.a == nil {
		s.b.MulT(threads, n, x, ldx, y, ldy, beta)
		return
	}
	r, _ := s.a.Shape()
	t := make([]float32, n*r)
	s.a.MulT(threads, n, x, ldx, t, r, 0)
	s.b.MulT(threads, n, t, r, y, ldy, beta)
}

func (s *sumOp) Row(i int, dst []float32) {
	dst = dst[:s.in]
	if s.base != nil {
		s.base.Row(i, dst)
	} else {
		clear(dst)
	}
	if s.a == nil {
		t := make([]float32, s.in)
		s.b.Row(i, t)
		addTo(dst, t)
		return
	}
	r, _ := s.a.Shape()
	coef := make([]float32, r)
	s.b.Row(i, coef)
	row := make([]float32, s.in)
	for k, c := range coef {
		s.a.Row(k, row)
		kernels.Axpy(c, row, dst)
	}
}

func (s *sumOp) Bytes() int64 {
	n := s.b.Bytes()
	if s.base != nil {
		n += s.base.Bytes()
	}
	if s.a != nil {
		n += s.a.Bytes()
	}
	return n
}

// LoadOperators builds the model described by cfg whose linear layers and
// token embeddings are ops's operators where it has one (an inference-only
// model: the passes compute on the stored matrices, and the model holds no
// float32 copy of them), the other tensors (norms, biases) being read from
// w. A decoding step's products with up to kernels.MaxStoredRows rows read
// the stored encoding directly; longer passes decode each matrix a block of
// rows at a time for Sgemm. Training such a model is not supported: its
// operator-backed parameters have no Data.
//
// Weights stored as [in, out] (GPT-2's Conv1D) are not taken from ops.
func LoadOperators(cfg *formats.Config, w Weights, ops Operators) (*Model, error) {
	if w == nil || ops == nil {
		return nil, fmt.Errorf("transformer: no weights")
	}
	spec, err := BuildSpec(cfg, hasFunc(w))
	if err != nil {
		if errors.Is(err, ErrUnsupportedArchitecture) || errors.Is(err, formats.ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", formats.ErrInvalid, err)
	}
	m := &Model{Spec: spec, Params: map[string]*Param{}, blocks: make([][]*Param, len(spec.Layers))}
	ld := loader{m: m, w: w, block: -1, ops: ops}
	if err := ld.build(spec); err != nil {
		return nil, err
	}
	m.Config = cfg
	m.operators = true
	return m, nil
}

// Operators reports whether the model computes on stored operators
// (LoadOperators).
func (m *Model) Operators() bool { return m.operators }

// StoredBytes returns the bytes of the operators a pass reads: every
// linear layer's and the output head's (the token embeddings contribute
// only the rows looked up). It is 0 for a model without operators.
func (m *Model) StoredBytes() int64 {
	var n int64
	add := func(l *linear) {
		if l.op != nil {
			n += l.op.Bytes()
		}
	}
	for i := range m.net.layers {
		l := &m.net.layers[i]
		for _, ln := range []*linear{&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.qkv, &l.attn.o, &l.mlp.gate, &l.mlp.up, &l.mlp.down} {
			add(ln)
		}
	}
	add(&m.net.lm)
	return n
}

// operator returns the operator of a linear weight of shape [out, in], or
// nil when the model reads it as a dense tensor.
func (l *loader) operator(name string, out, in int, inOut bool) Operator {
	if l.ops == nil || inOut || l.err != nil {
		return nil
	}
	op, err := l.ops.Operator(name)
	if err != nil {
		l.fail(fmt.Errorf("%s: %w", name, err))
		return nil
	}
	if op == nil {
		return nil
	}
	if o, i := op.Shape(); o != out || i != in {
		l.fail(fmt.Errorf("%s: %w: stored shape [%d %d], config implies [%d %d]", name, formats.ErrInvalid, o, i, out, in))
		return nil
	}
	if p, ok := l.m.Params[name]; ok {
		if !sameShape(p.Shape, []int{out, in}) {
			l.fail(fmt.Errorf("%s: used with shape %v and %v", name, p.Shape, []int{out, in}))
		}
		return op
	}
	l.add(&Param{Name: name, Shape: []int{out, in}})
	return op
}
