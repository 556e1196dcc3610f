package transformer

import (
	"fmt"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
)

// LayerSource supplies the dense weights of one block at a time, for a
// model whose blocks' weights stay as stored until a pass runs them.
type LayerSource interface {
	// FillLayer writes the dense weights of block l into the Data of params,
	// which are all of the block's parameters, each allocated to its full
	// length. The source must not keep the slices.
	FillLayer(l int, params []*Param) error
}

// Shaper is implemented by Weights sources that can give a tensor's shape
// without reading its data. LoadStreamed uses it for the blocks' tensors.
type Shaper interface {
	Shape(name string) ([]int, error)
}

// LoadStreamed builds the model described by cfg whose blocks' weights are
// filled by src only while a pass runs each block, into buffers shared by
// all blocks: a model of L blocks then holds the dense weights of one block,
// plus the tensors outside the blocks (embeddings, final norm, head), which
// come from w and are kept without a copy, so w must not reuse them.
// The blocks' shapes come from w's Shape method when it has one.
//
// Passes on a streamed model run one at a time (concurrent Forward calls
// wait for each other). A training pass fills each block twice, in the
// forward and in the backward pass; NewBlockTrainer keeps its gradients to
// one block too.
func LoadStreamed(cfg *formats.Config, w Weights, src LayerSource) (*Model, error) {
	if w == nil || src == nil {
		return nil, fmt.Errorf("transformer: no weights")
	}
	spec, err := BuildSpec(cfg, hasFunc(w))
	if err != nil {
		return nil, err
	}
	m, _, err := loadSpec(spec, w, true)
	if err != nil {
		return nil, err
	}
	m.Config = cfg
	m.stream = &streaming{src: src}
	return m, nil
}

// Streamed reports whether the model fills its blocks' weights during
// passes (LoadStreamed).
func (m *Model) Streamed() bool { return m.stream != nil }

// BlockParams returns the parameters of block l, in load order. In a
// streamed model their Data is nil outside a pass.
func (m *Model) BlockParams(l int) []*Param { return m.blocks[l] }

// streaming holds the shared block buffers of a streamed model.
type streaming struct {
	src LayerSource
	// mu serializes passes, which share bufs.
	mu sync.Mutex
	// bufs[i] backs the i-th parameter of whichever block is running.
	bufs [][]float32
}

// fill points params at the shared buffers and has the source fill them.
func (s *streaming) fill(params []*Param, l int) error {
	for len(s.bufs) < len(params) {
		s.bufs = append(s.bufs, nil)
	}
	for i, p := range params {
		n := p.Len()
		if cap(s.bufs[i]) < n {
			s.bufs[i] = make([]float32, n)
		}
		p.Data = s.bufs[i][:n]
	}
	if err := s.src.FillLayer(l, params); err != nil {
		s.drop(params)
		return fmt.Errorf("layer %d: %w", l, err)
	}
	return nil
}

// drop detaches params from the shared buffers.
func (s *streaming) drop(params []*Param) {
	for _, p := range params {
		p.Data = nil
	}
}

// shapeOf returns the shape of the named tensor of w, without reading its
// data when w is a Shaper.
func shapeOf(w Weights, name string) ([]int, error) {
	if s, ok := w.(Shaper); ok {
		return s.Shape(name)
	}
	_, shape, err := w.Tensor(name)
	return shape, err
}
