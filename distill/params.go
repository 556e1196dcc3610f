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

// LRScales multiply the learning rate of classes of stored tensors; zero
// means 1. Factors and deltas always use the base learning rate.
type LRScales struct {
	// Bases scales the compound bases, Passthrough the embeddings, final
	// norm and head (trained with TrainAll).
	Bases, Passthrough float64
}

// param is one trainable stored tensor with its gradient and Adam moments.
type param struct {
	name       string
	data, grad []float32
	m, v       []float32
	// lrScale multiplies the learning rate of this tensor (1 when unset).
	lrScale float64
}

// binding ties one dense layer weight of the student transformer to the
// stored tensors that make it up: W = base + B·A, base + delta, or base;
// base is nil for suffixes stored without one (a zero base).
type binding struct {
	dense      *transformer.Param
	layer      int
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
	// byDense maps a dense layer weight's name onto its binding.
	byDense map[string]*binding
	// pass lists the pass-through tensors the transformer uses.
	pass   []string
	params []*param
	byName map[string]*param
	// fq, when set, supplies the fake-quantized forward values.
	fq *fakeQuant
}

// newStudent prepares the VLoRA model m for training the given set, with
// the learning-rate scales lr.
func newStudent(m *model.Model, set TrainSet, lr LRScales) (*student, error) {
	vm, net := m.VLoRA, m.Net
	if vm == nil {
		return nil, fmt.Errorf("distill: the student is not a VLoRA model")
	}
	s := &student{m: m, byName: map[string]*param{}, byDense: map[string]*binding{}}
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
	scaled := func(p *param, f float64) {
		if f > 0 {
			p.lrScale = f
		}
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
			bd := &binding{dense: dp, layer: l}
			bd.rows, bd.cols = vlora.Matrix(suf.Shape)
			bd.base = vm.Tensors[vlora.BaseName(c, suf.Name)]
			if set != TrainFactors && mf.HasBase(suf.Name) {
				bd.baseP = add(vlora.BaseName(c, suf.Name))
				scaled(bd.baseP, lr.Bases)
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
			s.byDense[name] = bd
		}
	}
	for _, p := range mf.Passthrough {
		if _, ok := net.Params[p.Name]; ok {
			s.pass = append(s.pass, p.Name)
			if set == TrainAll {
				scaled(add(p.Name), lr.Passthrough)
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

// zeroGrad clears the gradients of the trainable stored tensors.
func (s *student) zeroGrad() {
	for _, p := range s.params {
		clear(p.grad)
	}
}

// chain turns dense-weight gradients into gradients of the trainable stored
// tensors (see chainWeight), after zeroGrad.
func (s *student) chain(grads map[string]*transformer.Param) {
	s.zeroGrad()
	for _, bd := range s.bindings {
		if g, ok := grads[bd.dense.Name]; ok {
			bd.chainWeight(g.Data, s.fq)
		}
	}
	s.chainRest(grads)
}

// chainBlock adds the gradients of one block's dense weights onto the
// trainable stored tensors as soon as the backward pass has computed them
// (transformer.NewBlockTrainer), so that no dense gradient outlives its
// block.
func (s *student) chainBlock(_ int, grads []*transformer.Param) error {
	for _, g := range grads {
		if bd, ok := s.byDense[g.Name]; ok {
			bd.chainWeight(g.Data, s.fq)
		}
	}
	return nil
}

// chainWeight adds the gradient dw of one dense layer weight onto the
// trainable stored tensors it is made of: dBase += dW, dD += dW,
// dB += dW·Aᵀ, dA += Bᵀ·dW. Under fake quantization (fq not nil) A and B
// are the forward (quantized) values and every gradient passes straight
// through to the master weights.
func (bd *binding) chainWeight(dw []float32, fq *fakeQuant) {
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
		kernels.Sgemm(false, true, rows, r, cols, 1, dw, cols, fq.value(bd.a), cols, 1, bd.bP.grad, r)
		kernels.Sgemm(true, false, r, cols, rows, 1, fq.value(bd.b), r, dw, cols, 1, bd.aP.grad, cols)
	}
}

// chainRest adds the gradients of the pass-through tensors, which the
// trainer returns after the blocks'.
func (s *student) chainRest(grads map[string]*transformer.Param) {
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

// chainLayer adds the gradients of grads' dense weights of layer l to the
// stored tensors they are made of, as chain does, without clearing.
func (s *student) chainLayer(grads map[string]*transformer.Param, l int) {
	for _, bd := range s.bindings {
		if bd.layer != l {
			continue
		}
		if g, ok := grads[bd.dense.Name]; ok {
			bd.chainWeight(g.Data, s.fq)
		}
	}
}

// layerParams returns the trainable stored tensors of the given layers:
// their increments and the bases they use, each once.
func (s *student) layerParams(layers []int) []*param {
	in := map[int]bool{}
	for _, l := range layers {
		in[l] = true
	}
	seen := map[*param]bool{}
	var ps []*param
	for _, bd := range s.bindings {
		if !in[bd.layer] {
			continue
		}
		for _, p := range []*param{bd.baseP, bd.aP, bd.bP, bd.dP} {
			if p != nil && !seen[p] {
				seen[p] = true
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// numTrainable counts trainable values.
func (s *student) numTrainable() int {
	n := 0
	for _, p := range s.params {
		n += len(p.data)
	}
	return n
}
