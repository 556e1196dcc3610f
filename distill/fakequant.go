package distill

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// QuantPlan gives the storage scheme of each family of stored 2-D tensors
// for quantization-aware distillation. A scheme with Bits 0 keeps that
// family in float; 1-D tensors (norms, biases, their deltas) always stay
// float.
type QuantPlan struct {
	// Bases applies to the compound bases.
	Bases quant.Scheme
	// Factors applies to the increments: lora_A, lora_B and 2-D dense
	// deltas.
	Factors quant.Scheme
	// Passthrough applies to the tensors stored as they are: embeddings
	// and the LM head.
	Passthrough quant.Scheme
}

// Active reports whether the plan quantizes anything.
func (p QuantPlan) Active() bool {
	return p.Bases.Bits != 0 || p.Factors.Bits != 0 || p.Passthrough.Bits != 0
}

// Validate checks every scheme the plan uses.
func (p QuantPlan) Validate() error {
	for _, s := range []quant.Scheme{p.Bases, p.Factors, p.Passthrough} {
		if s.Bits == 0 {
			continue
		}
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// fakeQuantized is one stored tensor whose forward value is its fake
// quantization.
type fakeQuantized struct {
	src        *vlora.Tensor
	buf        []float32
	rows, cols int
	scheme     quant.Scheme
}

// fakeQuant holds the forward values of the quantized tensors of a student.
// The stored tensors keep the float master weights, which the optimizer
// updates; the forward pass reads the fake-quantized copies, and gradients
// pass to the master weights unchanged (straight-through estimator). Scales
// are recomputed from the master weights at every refresh.
type fakeQuant struct {
	entries []*fakeQuantized
	bySrc   map[*vlora.Tensor]*fakeQuantized
}

// newFakeQuant selects the tensors of s that plan quantizes; it returns nil
// when the plan is inactive.
func newFakeQuant(s *student, plan QuantPlan) (*fakeQuant, error) {
	if !plan.Active() {
		return nil, nil
	}
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	f := &fakeQuant{bySrc: map[*vlora.Tensor]*fakeQuantized{}}
	add := func(t *vlora.Tensor, sc quant.Scheme) {
		if t == nil || sc.Bits == 0 || len(t.Shape) < 2 || f.bySrc[t] != nil {
			return
		}
		rows, cols := vlora.Matrix(t.Shape)
		e := &fakeQuantized{src: t, buf: make([]float32, len(t.Data)), rows: rows, cols: cols, scheme: sc}
		f.entries = append(f.entries, e)
		f.bySrc[t] = e
	}
	for _, bd := range s.bindings {
		add(bd.base, plan.Bases)
		add(bd.a, plan.Factors)
		add(bd.b, plan.Factors)
		add(bd.d, plan.Factors)
	}
	for name := range s.pass {
		add(s.vm.Tensors[name], plan.Passthrough)
	}
	if len(f.entries) == 0 {
		return nil, fmt.Errorf("distill: the quantization plan selects no 2-D tensor")
	}
	return f, nil
}

// refresh recomputes every fake-quantized value from the master weights.
func (f *fakeQuant) refresh() {
	for _, e := range f.entries {
		quant.FakeQuant(e.buf, e.src.Data, e.rows, e.cols, e.scheme)
	}
}

// value returns the forward value of t: its fake quantization when t is
// quantized, else its data.
func (f *fakeQuant) value(t *vlora.Tensor) []float32 {
	if f != nil {
		if e := f.bySrc[t]; e != nil {
			return e.buf
		}
	}
	return t.Data
}

// commit replaces the master weights by their quantized values, so that
// the model saved is the model that was trained (its tensors then hold
// exactly representable values, and quantizing them again is lossless up
// to F16 rounding of the scales).
func (f *fakeQuant) commit() {
	f.refresh()
	for _, e := range f.entries {
		copy(e.src.Data, e.buf)
	}
}

// storageBits returns the bits vm's tensors cost when the quantized ones
// are stored in their scheme and all others in F32.
func (f *fakeQuant) storageBits(vm *vlora.Model) int64 {
	var bits int64
	for _, t := range vm.Tensors {
		if e := f.byFQ(t); e != nil {
			bits += e.scheme.StorageBits(e.rows, e.cols)
		} else {
			bits += 32 * int64(len(t.Data))
		}
	}
	return bits
}

// byFQ returns the entry of t, or nil (also for a nil receiver).
func (f *fakeQuant) byFQ(t *vlora.Tensor) *fakeQuantized {
	if f == nil {
		return nil
	}
	return f.bySrc[t]
}
