package transformer

import (
	"errors"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// ErrNotFound reports a tensor name that a Weights source does not hold.
// Weights implementations wrap it so that callers can test with errors.Is.
var ErrNotFound = errors.New("tensor not found")

// Weights supplies dense float32 parameters by Hugging Face tensor name.
// Tensor returns the data in row-major order and its shape; a missing tensor
// is an error wrapping ErrNotFound. The model copies what it needs, so the
// returned slice may be reused by the source afterwards.
type Weights interface {
	Tensor(name string) (data []float32, shape []int, err error)
}

// CheckpointWeights adapts a formats.Checkpoint to Weights.
type CheckpointWeights struct {
	Checkpoint *formats.Checkpoint
}

// Tensor reads the named tensor as float32.
func (w CheckpointWeights) Tensor(name string) ([]float32, []int, error) {
	info, ok := w.Checkpoint.Info(name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w: %q", w.Checkpoint.Dir, ErrNotFound, name)
	}
	data, err := w.Checkpoint.ReadFloat32(name)
	if err != nil {
		return nil, nil, err
	}
	return data, append([]int(nil), info.Shape...), nil
}

// Has reports whether the checkpoint stores the named tensor.
func (w CheckpointWeights) Has(name string) bool { return w.Checkpoint.Has(name) }

// MapWeights is an in-memory Weights source keyed by name.
type MapWeights map[string]*Param

// Tensor returns the named parameter's data and shape.
func (m MapWeights) Tensor(name string) ([]float32, []int, error) {
	p, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return p.Data, p.Shape, nil
}

// Has reports whether the map holds the named parameter.
func (m MapWeights) Has(name string) bool { _, ok := m[name]; return ok }

// hasFunc returns a presence test for w: its Has method when it has one,
// otherwise a probe through Tensor.
func hasFunc(w Weights) func(string) bool {
	if h, ok := w.(interface{ Has(string) bool }); ok {
		return h.Has
	}
	return func(name string) bool {
		_, _, err := w.Tensor(name)
		return err == nil
	}
}

// Param is a named dense parameter (or the gradient of one).
type Param struct {
	Name  string
	Shape []int
	// Data holds the values in row-major order.
	Data []float32
}

// Len returns the number of elements the shape describes.
func (p *Param) Len() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// sameShape reports whether two shapes are equal after dropping leading
// unit dimensions (so [1, 17, 48] matches [17, 48]).
func sameShape(got, want []int) bool {
	trim := func(s []int) []int {
		for len(s) > 1 && s[0] == 1 {
			s = s[1:]
		}
		return s
	}
	g, w := trim(got), trim(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

// Shape returns the stored shape of the named tensor without reading it.
func (w CheckpointWeights) Shape(name string) ([]int, error) {
	info, ok := w.Checkpoint.Info(name)
	if !ok {
		return nil, fmt.Errorf("%s: %w: %q", w.Checkpoint.Dir, ErrNotFound, name)
	}
	return append([]int(nil), info.Shape...), nil
}

// fillChunk is the number of elements converted per read by FillLayer,
// which bounds its temporary buffer (2–4 bytes per element).
const fillChunk = 1 << 20

// FillLayer reads block l's tensors, by their names, from the checkpoint
// and converts them to float32 (LayerSource), a chunk at a time; the
// checkpoint stays in its stored dtype on disk.
func (w CheckpointWeights) FillLayer(l int, params []*Param) error {
	for _, p := range params {
		for off := 0; off < len(p.Data); off += fillChunk {
			if err := w.Checkpoint.ReadFloat32At(p.Name, off, p.Data[off:min(off+fillChunk, len(p.Data))]); err != nil {
				return err
			}
		}
	}
	return nil
}
