package transformer

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Model is a loaded transformer: its architecture Spec and its parameters.
//
// Params holds every parameter the Spec uses, keyed by Hugging Face name; a
// tied LM head adds no entry of its own. Parameter values may be overwritten
// in place (same length) between passes, which is how a compressed model
// hands over freshly materialised dense weights. A Model is safe for
// concurrent Forward calls as long as its parameters are not being changed.
type Model struct {
	Config *formats.Config
	Spec   *Spec
	Params map[string]*Param
	// Threads bounds the goroutines a pass uses; values below 1 mean
	// runtime.GOMAXPROCS(0).
	Threads int

	net network
	// blocks lists the parameters of each block, in load order.
	blocks [][]*Param
	// stream, when set, fills the blocks' weights during passes.
	stream *streaming
	// operators is set by LoadOperators.
	operators bool
	// arenas recycles the work buffers of inference passes.
	arenas sync.Pool
}

// linear, norm, attention, mlp, layer and network are a Spec resolved onto
// parameter pointers.
type linear struct {
	w, b *Param
	// op, when set, computes the products on the stored weight; w then
	// has no Data.
	op      Operator
	in, out int
	inOut   bool
}

type norm struct {
	kind NormKind
	w, b *Param
	eps  float32
}

type attention struct {
	q, k, v, qkv, o linear
	fused           bool
	nh, nkv, hd     int
	causal          bool
	theta           float64
	scale           float32
	window          int
}

// width returns the row width of the q|k|v buffer.
func (a *attention) width() int { return (a.nh + 2*a.nkv) * a.hd }

type mlp struct {
	gated          bool
	gate, up, down linear
	act            Activation
}

// width returns the row width of the pre-activation buffer.
func (m *mlp) width() int {
	if m.gated {
		return 2 * m.up.out
	}
	return m.up.out
}

type layer struct {
	post   bool
	n1, n2 norm
	attn   attention
	mlp    mlp
}

type patch struct {
	w, b, cls, pos  *Param
	ch, size, h, w_ int
}

type network struct {
	hidden                   int
	tokens, positions, types *Param
	// tokensOp, when set, holds the token embeddings as stored.
	tokensOp                Operator
	vocab, maxPos, numTypes int
	embNorm                 *norm
	patch                   *patch
	layers                  []layer
	final                   *norm
	finalInHidden           bool
	headKind                HeadKind
	lm                      linear
	pooler                  *linear
	classifier              linear
}

// Load builds the model described by cfg with parameters from w.
func Load(cfg *formats.Config, w Weights) (*Model, error) {
	spec, err := BuildSpec(cfg, hasFunc(w))
	if err != nil {
		if errors.Is(err, ErrUnsupportedArchitecture) || errors.Is(err, formats.ErrInvalid) {
			return nil, err
		}
		// The config describes no model the architecture can build.
		return nil, fmt.Errorf("%w: %w", formats.ErrInvalid, err)
	}
	m, err := LoadSpec(spec, w)
	if err != nil {
		return nil, err
	}
	m.Config = cfg
	return m, nil
}

// LoadSpec builds a model for spec with parameters from w. Every tensor is
// copied and its shape checked against the spec.
func LoadSpec(spec *Spec, w Weights) (*Model, error) {
	if w == nil {
		return nil, fmt.Errorf("transformer: no weights")
	}
	m, _, err := loadSpec(spec, w, false)
	return m, err
}

// ParamInfo names a parameter and gives its shape.
type ParamInfo struct {
	Name  string
	Shape []int
}

// Parameters lists every tensor a model of this spec reads, once each (a
// tied head is listed once, under the embedding), in load order.
func (s *Spec) Parameters() ([]ParamInfo, error) {
	_, order, err := loadSpec(s, nil, false)
	return order, err
}

// loadSpec builds the model; with w == nil every parameter is zero. With
// streamed, the blocks' parameters get shapes but no data, and the other
// tensors from w are kept rather than copied.
func loadSpec(spec *Spec, w Weights, streamed bool) (*Model, []ParamInfo, error) {
	m := &Model{Spec: spec, Params: map[string]*Param{}, blocks: make([][]*Param, len(spec.Layers))}
	ld := loader{m: m, w: w, block: -1, streamed: streamed}
	if err := ld.build(spec); err != nil {
		return nil, nil, err
	}
	return m, ld.order, nil
}

// build loads every parameter of spec into ld.m.
func (ld *loader) build(spec *Spec) error {
	n := &ld.m.net
	n.hidden = spec.Hidden
	if err := ld.embeddings(n, spec); err != nil {
		return err
	}
	for i, ls := range spec.Layers {
		ld.block = i
		l, err := ld.layer(i, ls, spec.Hidden)
		if err != nil {
			return fmt.Errorf("%w: %w", formats.ErrInvalid, err)
		}
		n.layers = append(n.layers, l)
	}
	ld.block = -1
	ld.head(n, spec)
	if ld.err != nil {
		if errors.Is(ld.err, formats.ErrInvalid) {
			return fmt.Errorf("transformer: %w", ld.err)
		}
		// Weights that do not fit the spec are bad input.
		return fmt.Errorf("transformer: %w: %w", formats.ErrInvalid, ld.err)
	}
	return nil
}

// embeddings loads the patch or token embeddings and their norm.
func (ld *loader) embeddings(n *network, spec *Spec) error {
	H := spec.Hidden
	e := spec.Embed
	if e.Patch != nil {
		p := e.Patch
		if p.Size <= 0 || p.Channels <= 0 || p.ImageH%p.Size != 0 || p.ImageW%p.Size != 0 {
			return fmt.Errorf("transformer: bad patch geometry %+v", *p)
		}
		n.patch = &patch{
			w:   ld.param(p.Weight, H, p.Channels, p.Size, p.Size),
			b:   ld.optional(p.Bias, H),
			cls: ld.param(p.CLS, H),
			pos: ld.param(p.Positions, p.Patches()+1, H),
			ch:  p.Channels, size: p.Size, h: p.ImageH, w_: p.ImageW,
		}
	} else {
		if op := ld.operator(e.Tokens, e.Vocab, H, false); op != nil {
			n.tokens, n.tokensOp = ld.m.Params[e.Tokens], op
		} else {
			n.tokens = ld.param(e.Tokens, e.Vocab, H)
		}
		n.vocab = e.Vocab
		if e.Positions != "" {
			n.positions = ld.param(e.Positions, e.MaxPos, H)
			n.maxPos = e.MaxPos
		}
		if e.TokenTypes != "" {
			n.types = ld.param(e.TokenTypes, e.NumTypes, H)
			n.numTypes = e.NumTypes
		}
	}
	if e.Norm != nil {
		nm := ld.norm(*e.Norm, H)
		n.embNorm = &nm
	}
	return nil
}

// layer loads block i: its norms, attention and MLP. A bad head layout is
// returned; inconsistent shapes are recorded in ld.err.
func (ld *loader) layer(i int, ls LayerSpec, H int) (layer, error) {
	a := ls.Attn
	if a.Heads <= 0 || a.KVHeads <= 0 || a.Heads%a.KVHeads != 0 || a.HeadDim <= 0 {
		return layer{}, fmt.Errorf("transformer: layer %d: bad head layout %d/%d×%d", i, a.Heads, a.KVHeads, a.HeadDim)
	}
	if a.RopeTheta != 0 && a.HeadDim%2 != 0 {
		return layer{}, fmt.Errorf("transformer: layer %d: rotary embeddings need an even head dimension, got %d", i, a.HeadDim)
	}
	l := layer{post: ls.PostNorm, n1: ld.norm(ls.Norm1, H), n2: ld.norm(ls.Norm2, H)}
	ld.attention(&l.attn, i, a, H)
	ld.mlp(&l.mlp, i, ls.MLP, H)
	return l, nil
}

// attention loads the projections of layer i's attention.
func (ld *loader) attention(at *attention, i int, a AttentionSpec, H int) {
	at.nh, at.nkv, at.hd = a.Heads, a.KVHeads, a.HeadDim
	at.causal, at.theta, at.scale, at.window = a.Causal, a.RopeTheta, float32(a.Scale), a.Window
	at.fused = a.Fused
	qd, kd := a.Heads*a.HeadDim, a.KVHeads*a.HeadDim
	if a.Fused {
		at.qkv = ld.linear(a.QKV)
		if at.qkv.in != H || at.qkv.out != qd+2*kd {
			ld.fail(fmt.Errorf("layer %d: fused projection %s is %d→%d, want %d→%d", i, a.QKV.Weight, at.qkv.in, at.qkv.out, H, qd+2*kd))
		}
	} else {
		at.q, at.k, at.v = ld.linear(a.Q), ld.linear(a.K), ld.linear(a.V)
		if at.q.out != qd || at.k.out != kd || at.v.out != kd || at.q.in != H || at.k.in != H || at.v.in != H {
			ld.fail(fmt.Errorf("layer %d: q/k/v projections do not match %d heads, %d kv heads of %d", i, a.Heads, a.KVHeads, a.HeadDim))
		}
	}
	at.o = ld.linear(a.O)
	if at.o.in != qd || at.o.out != H {
		ld.fail(fmt.Errorf("layer %d: output projection %s is %d→%d, want %d→%d", i, a.O.Weight, at.o.in, at.o.out, qd, H))
	}
}

// mlp loads the projections of layer i's MLP.
func (ld *loader) mlp(mp *mlp, i int, s MLPSpec, H int) {
	mp.gated, mp.act = s.Gated, s.Act
	if mp.act < SiLU || mp.act > ReLU {
		ld.fail(fmt.Errorf("layer %d: unknown activation %d", i, mp.act))
	}
	if mp.gated {
		mp.gate = ld.linear(s.Gate)
	}
	mp.up, mp.down = ld.linear(s.Up), ld.linear(s.Down)
	if mp.up.in != H || mp.down.out != H || mp.down.in != mp.up.out || (mp.gated && mp.gate.out != mp.up.out) {
		ld.fail(fmt.Errorf("layer %d: inconsistent MLP dimensions", i))
	}
}

// head loads the final norm and the output head.
func (ld *loader) head(n *network, spec *Spec) {
	if spec.FinalNorm != nil {
		nm := ld.norm(*spec.FinalNorm, spec.Hidden)
		n.final = &nm
	}
	n.finalInHidden = spec.FinalNormInHidden
	n.headKind = spec.Head.Kind
	switch spec.Head.Kind {
	case HeadLM:
		n.lm = ld.linear(spec.Head.LM)
	case HeadEncoder:
		if spec.Head.Pooler != nil {
			p := ld.linear(*spec.Head.Pooler)
			n.pooler = &p
		}
	case HeadClassifier:
		n.classifier = ld.linear(spec.Head.Classifier)
	default:
		ld.fail(fmt.Errorf("unknown head kind %d", spec.Head.Kind))
	}
}

// loader reads parameters once each and records the first error.
type loader struct {
	m     *Model
	w     Weights
	err   error
	order []ParamInfo
	// block is the index of the block being loaded, or -1.
	block int
	// streamed leaves the blocks' parameters without data and keeps the
	// other tensors' data without a copy.
	streamed bool
	// ops, when set, supplies the linear weights and token embeddings as
	// stored operators (LoadOperators).
	ops Operators
}

func (l *loader) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// param loads the named tensor and checks its shape (leading unit
// dimensions are ignored).
func (l *loader) param(name string, shape ...int) *Param {
	if p, ok := l.m.Params[name]; ok {
		if !sameShape(p.Shape, shape) {
			l.fail(fmt.Errorf("%s: used with shape %v and %v", name, p.Shape, shape))
		}
		return p
	}
	if l.err != nil {
		// Loading has failed: nothing is allocated for the remaining
		// parameters, whose configured shapes may be arbitrarily large.
		return &Param{Name: name, Shape: shape}
	}
	if l.w == nil {
		return l.add(&Param{Name: name, Shape: append([]int(nil), shape...), Data: make([]float32, prod(shape))})
	}
	if l.streamed && l.block >= 0 {
		got, err := shapeOf(l.w, name)
		if err != nil {
			l.fail(fmt.Errorf("%s: %w", name, err))
			return &Param{Name: name, Shape: shape, Data: make([]float32, prod(shape))}
		}
		if !sameShape(got, shape) {
			l.fail(fmt.Errorf("%s: shape %v, want %v", name, got, shape))
			return &Param{Name: name, Shape: shape, Data: make([]float32, prod(shape))}
		}
		return l.add(&Param{Name: name, Shape: append([]int(nil), got...)})
	}
	data, got, err := l.w.Tensor(name)
	if err != nil {
		l.fail(fmt.Errorf("%s: %w", name, err))
		return &Param{Name: name, Shape: shape}
	}
	if !sameShape(got, shape) || len(data) != prod(shape) {
		l.fail(fmt.Errorf("%s: %w: stored shape %v, config implies %v", name, formats.ErrInvalid, got, shape))
		return &Param{Name: name, Shape: shape}
	}
	if !l.streamed {
		data = append([]float32(nil), data...)
	}
	return l.add(&Param{Name: name, Shape: append([]int(nil), got...), Data: data})
}

// add registers a newly loaded parameter, under its block when it has one.
func (l *loader) add(p *Param) *Param {
	l.m.Params[p.Name] = p
	l.order = append(l.order, ParamInfo{Name: p.Name, Shape: p.Shape})
	if l.block >= 0 {
		l.m.blocks[l.block] = append(l.m.blocks[l.block], p)
	}
	return p
}

// optional loads the named tensor when name is not empty.
func (l *loader) optional(name string, shape ...int) *Param {
	if name == "" {
		return nil
	}
	return l.param(name, shape...)
}

func (l *loader) linear(s LinearSpec) linear {
	if s.In <= 0 || s.Out <= 0 {
		l.fail(fmt.Errorf("%s: bad dimensions %d→%d", s.Weight, s.In, s.Out))
		return linear{}
	}
	if op := l.operator(s.Weight, s.Out, s.In, s.InOut); op != nil {
		return linear{w: l.m.Params[s.Weight], op: op, b: l.optional(s.Bias, s.Out), in: s.In, out: s.Out}
	}
	return linear{w: l.param(s.Weight, s.weightShape()...), b: l.optional(s.Bias, s.Out), in: s.In, out: s.Out, inOut: s.InOut}
}

func (l *loader) norm(s NormSpec, h int) norm {
	if s.Kind != RMSNorm && s.Kind != LayerNorm {
		l.fail(fmt.Errorf("%s: unknown normalisation %d", s.Weight, s.Kind))
	}
	n := norm{kind: s.Kind, w: l.param(s.Weight, h), eps: float32(s.Eps)}
	if s.Kind == LayerNorm {
		n.b = l.optional(s.Bias, h)
	} else if s.Bias != "" {
		l.fail(fmt.Errorf("%s: RMSNorm takes no bias", s.Bias))
	}
	return n
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// workers returns the number of goroutines a pass may use.
func (m *Model) workers() int {
	if m.Threads > 0 {
		return m.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// NumLayers returns the number of transformer blocks.
func (m *Model) NumLayers() int { return len(m.net.layers) }

// Hidden returns the hidden size.
func (m *Model) Hidden() int { return m.net.hidden }

// SetParam copies data into the named parameter. The length must match the
// parameter's; the model keeps no reference to data.
func (m *Model) SetParam(name string, data []float32) error {
	p, ok := m.Params[name]
	if !ok {
		return fmt.Errorf("transformer: %w: %q", ErrNotFound, name)
	}
	if len(data) != len(p.Data) {
		return fmt.Errorf("transformer: %w: %s has %d values, got %d", formats.ErrInvalid, name, len(p.Data), len(data))
	}
	copy(p.Data, data)
	return nil
}
