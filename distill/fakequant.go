package distill

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// fakeQuantized is one stored tensor whose forward value is its fake
// quantization.
type fakeQuantized struct {
	src *vlora.Tensor
	// master is the float master weights (src.Data outside swap), buf
	// their fake quantization.
	master, buf []float32
	rows, cols  int
	scheme      quant.Scheme
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

// newFakeQuant selects the tensors of s that plan quantizes (by
// vlora.QuantPlan.SchemeOf, the rule storage follows); it returns
// nil when the plan is inactive.
func newFakeQuant(s *student, plan vlora.QuantPlan) (*fakeQuant, error) {
	if !plan.Active() {
		return nil, nil
	}
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	f := &fakeQuant{bySrc: map[*vlora.Tensor]*fakeQuantized{}}
	for name, t := range s.m.VLoRA.Tensors {
		sc, ok := plan.SchemeOf(name, t.Shape)
		if !ok {
			continue
		}
		rows, cols := vlora.Matrix(t.Shape)
		e := &fakeQuantized{src: t, master: t.Data, buf: make([]float32, len(t.Data)), rows: rows, cols: cols, scheme: sc}
		f.entries = append(f.entries, e)
		f.bySrc[t] = e
	}
	if len(f.entries) == 0 {
		return nil, fmt.Errorf("distill: the quantization plan %s selects no 2-D tensor", plan)
	}
	return f, nil
}

// refresh recomputes every fake-quantized value from the master weights.
func (f *fakeQuant) refresh() {
	for _, e := range f.entries {
		quant.FakeQuant(e.buf, e.master, e.rows, e.cols, e.scheme)
	}
}

// swap points every quantized tensor at its fake-quantized values, so that
// the one materialization path (model.Materialize) reads them, and returns
// the function that points them back at the master weights.
func (f *fakeQuant) swap() func() {
	for _, e := range f.entries {
		e.src.Data = e.buf
	}
	return func() {
		for _, e := range f.entries {
			e.src.Data = e.master
		}
	}
}

// value returns the forward value of t: its fake quantization when t is
// quantized, else its data. f may be nil.
func (f *fakeQuant) value(t *vlora.Tensor) []float32 {
	if f != nil {
		if e := f.bySrc[t]; e != nil {
			return e.buf
		}
	}
	return t.Data
}

// commit replaces the master weights by their quantized values, so that
// the model saved is the model that was trained: its tensors then hold
// exactly representable values, and storing them in the plan's schemes
// reproduces them.
func (f *fakeQuant) commit() {
	f.refresh()
	for _, e := range f.entries {
		copy(e.master, e.buf)
	}
}
