package distill

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TrainSet selects which stored tensors distillation updates.
type TrainSet string

// Trainable sets.
const (
	// TrainFactors updates increments only: lora_A, lora_B and dense deltas.
	TrainFactors TrainSet = "factors"
	// TrainBases updates the increments and the compound bases.
	TrainBases TrainSet = "bases"
	// TrainAll also updates the pass-through tensors (embeddings, final
	// norm, head), which are stored anyway, so the file size is unchanged.
	TrainAll TrainSet = "all"
)

// ParseTrainSet parses "factors", "bases" or "all".
func ParseTrainSet(s string) (TrainSet, error) {
	switch TrainSet(s) {
	case TrainFactors, TrainBases, TrainAll:
		return TrainSet(s), nil
	}
	return "", fmt.Errorf("unknown trainable set %q (want factors, bases or all)", s)
}

// param is one trainable stored tensor with its gradient and Adam moments.
type param struct {
	name       string
	data, grad []float32
	m, v       []float32
}

// binding ties one dense layer weight of the student transformer to the
// stored tensors that make it up: W = base + B·A, base + delta, or base.
type binding struct {
	dense      *transformer.Param
	rows, cols int
	rank       int
	base       *vlora.Tensor
	a, b, d    *vlora.Tensor
	baseP      *param // nil when the base is frozen
	aP, bP, dP *param
}

// student couples a VLoRA model with the transformer that runs it.
type student struct {
	m        *model.Model
	bindings []*binding
	// pass lists the pass-through tensors the transformer uses.
	pass   []string
	params []*param
	byName map[string]*param
	// fq, when set, supplies the fake-quantized forward values.
	fq *fakeQuant
}

// newStudent prepares the VLoRA model m for training the given set.
func newStudent(m *model.Model, set TrainSet) (*student, error) {
	vm, net := m.VLoRA, m.Net
	if vm == nil {
		return nil, fmt.Errorf("distill: the student is not a VLoRA model")
	}
	s := &student{m: m, byName: map[string]*param{}}
	add := func(name string) *param {
		if p, ok := s.byName[name]; ok {
			return p
		}
		t := vm.Tensors[name]
		p := &param{name: name, data: t.Data, grad: make([]float32, len(t.Data)),
			m: make([]float32, len(t.Data)), v: make([]float32, len(t.Data))}
		s.byName[name] = p
		s.params = append(s.params, p)
		return p
	}
	mf := vm.Manifest
	for l := 0; l < mf.NumLayers; l++ {
		c, _ := vm.Compound(l)
		for _, suf := range mf.Suffixes {
			name := vm.LayerName(l, suf.Name)
			dp, ok := net.Params[name]
			if !ok {
				// The architecture does not use this tensor (it is stored
				// but ignored by the forward pass).
				continue
			}
			bd := &binding{dense: dp}
			bd.rows, bd.cols = vlora.Matrix(suf.Shape)
			bd.base = vm.Tensors[vlora.BaseName(c, suf.Name)]
			if set != TrainFactors {
				bd.baseP = add(vlora.BaseName(c, suf.Name))
			}
			if inc := vm.Increment(l, suf.Name); inc != nil {
				if inc.Kind == vlora.KindDense {
					bd.d = vm.Tensors[vlora.DeltaName(l, suf.Name)]
					bd.dP = add(vlora.DeltaName(l, suf.Name))
				} else {
					bd.rank = inc.Rank
					bd.a = vm.Tensors[vlora.LoraAName(l, suf.Name)]
					bd.b = vm.Tensors[vlora.LoraBName(l, suf.Name)]
					bd.aP = add(vlora.LoraAName(l, suf.Name))
					bd.bP = add(vlora.LoraBName(l, suf.Name))
				}
			}
			s.bindings = append(s.bindings, bd)
		}
	}
	for _, p := range mf.Passthrough {
		if _, ok := net.Params[p.Name]; ok {
			s.pass = append(s.pass, p.Name)
			if set == TrainAll {
				add(p.Name)
			}
		}
	}
	return s, nil
}

// materialize writes every dense weight of the transformer from the stored
// tensors, through model.Materialize; under fake quantization from their
// fake-quantized values, recomputed from the master weights.
func (s *student) materialize() error {
	if s.fq == nil {
		return s.m.Materialize()
	}
	s.fq.refresh()
	defer s.fq.swap()()
	return s.m.Materialize()
}

// chain turns dense-weight gradients into gradients of the trainable stored
// tensors: dBase += dW, dD = dW, dB = dW·Aᵀ, dA = Bᵀ·dW. Under fake
// quantization A and B are the forward (quantized) values and every
// gradient passes straight through to the master weights.
func (s *student) chain(grads map[string]*transformer.Param) {
	for _, p := range s.params {
		clear(p.grad)
	}
	for _, bd := range s.bindings {
		g, ok := grads[bd.dense.Name]
		if !ok {
			continue
		}
		dw := g.Data
		if bd.baseP != nil {
			for i, v := range dw {
				bd.baseP.grad[i] += v
			}
		}
		switch {
		case bd.dP != nil:
			for i, v := range dw {
				bd.dP.grad[i] += v
			}
		case bd.aP != nil && bd.rank > 0:
			r, rows, cols := bd.rank, bd.rows, bd.cols
			kernels.Sgemm(false, true, rows, r, cols, 1, dw, cols, s.fq.value(bd.a), cols, 1, bd.bP.grad, r)
			kernels.Sgemm(true, false, r, cols, rows, 1, s.fq.value(bd.b), r, dw, cols, 1, bd.aP.grad, cols)
		}
	}
	for _, name := range s.pass {
		if p, ok := s.byName[name]; ok {
			if g, ok := grads[name]; ok {
				for i, v := range g.Data {
					p.grad[i] += v
				}
			}
		}
	}
}

// numTrainable counts trainable values.
func (s *student) numTrainable() int {
	n := 0
	for _, p := range s.params {
		n += len(p.data)
	}
	return n
}
