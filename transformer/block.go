package transformer

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// ForwardLayer runs block li alone, as a training pass, on x, the block's
// input hidden states [batch, seq, Hidden] (token models: any batch of
// sequences starting at position 0). It returns the block output, owned by
// the Trainer until the next Forward or ForwardLayer; BackwardLayer
// propagates through it. Local (block-wise) distillation trains one block
// at a time this way.
func (t *Trainer) ForwardLayer(li, batch, seq int, x []float32) ([]float32, error) {
	n := &t.m.net
	if li < 0 || li >= len(n.layers) {
		return nil, fmt.Errorf("transformer: %w: layer %d outside [0,%d)", formats.ErrInvalid, li, len(n.layers))
	}
	if batch < 1 || seq < 1 || len(x) != batch*seq*n.hidden {
		return nil, fmt.Errorf("transformer: %w: layer input has %d values, want %d×%d×%d", formats.ErrInvalid, len(x), batch, seq, n.hidden)
	}
	t.ar.reset()
	p := t.m.newPass(batch, seq, true, &t.ar)
	t.p, t.layer = p, li
	in := p.ar.alloc(len(x))
	copy(in, x)
	return p.layerForward(li, &p.layers[li], in), nil
}

// BackwardLayer propagates dy, the gradient of a loss with respect to the
// output of the last ForwardLayer, through that block. It returns the
// gradient with respect to every parameter, as Backward does (zero outside
// the block), and dx, the gradient with respect to the block input, both
// owned by the Trainer until the next Backward or BackwardLayer.
func (t *Trainer) BackwardLayer(dy []float32) (grads map[string]*Param, dx []float32, err error) {
	p := t.p
	if p == nil || t.layer < 0 {
		return nil, nil, fmt.Errorf("transformer: BackwardLayer without a preceding ForwardLayer")
	}
	if len(dy) != p.N*p.H {
		return nil, nil, fmt.Errorf("transformer: %w: output gradient has %d values, want %d", formats.ErrInvalid, len(dy), p.N*p.H)
	}
	for _, gr := range t.grads {
		clear(gr.Data)
	}
	gb := func(q *Param) []float32 {
		if q == nil {
			return nil
		}
		return t.byParam[q]
	}
	dx = p.ar.alloc(len(dy))
	copy(dx, dy)
	p.layerBackward(&p.n.layers[t.layer], &p.layers[t.layer], dx, &backScratch{}, gb)
	return t.grads, dx, nil
}
