package transformer

import (
	"errors"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Trainer runs training passes on a Model: Forward keeps the activations
// that Backward needs, and Backward returns the gradient of a loss with
// respect to every parameter. Buffers are reused from one step to the next,
// so a Trainer is meant for repeated steps of one shape; it is not safe for
// concurrent use.
type Trainer struct {
	m     *Model
	ar    arena
	p     *pass
	grads map[string]*Param
	// byParam maps each parameter onto its gradient buffer.
	byParam map[*Param][]float32
	// onBlock, when set, receives each block's gradients from Backward;
	// blockGrads[i] then backs the gradient of the i-th parameter of
	// whichever block is being differentiated.
	onBlock    func(l int, grads []*Param) error
	blockGrads []*Param

	// Recompute, set before Forward, trades compute for memory
	// (activation checkpointing per block): the forward pass keeps only
	// each block's input, and the backward pass runs every block's forward
	// again just before differentiating it. Activation memory then is the
	// blocks' inputs plus one block's intermediates instead of every
	// block's, at the cost of one more forward pass. Gradients are the
	// same.
	Recompute bool
	// layer is the block of the last ForwardLayer, −1 after Forward.
	layer int
}

// NewTrainer returns a Trainer for m. It holds a gradient buffer for every
// parameter.
func (m *Model) NewTrainer() *Trainer {
	t := &Trainer{m: m, grads: map[string]*Param{}, byParam: map[*Param][]float32{}}
	for name, p := range m.Params {
		g := &Param{Name: name, Shape: append([]int(nil), p.Shape...), Data: make([]float32, p.Len())}
		t.grads[name] = g
		t.byParam[p] = g.Data
	}
	return t
}

// NewBlockTrainer returns a Trainer whose Backward hands the gradients of
// each block's parameters to onBlock as soon as they are computed, from the
// last block to the first, and keeps them nowhere else: the buffers passed
// to onBlock are shared by all blocks and valid only during the call, and
// the map Backward returns holds only the parameters outside the blocks
// (embeddings, final norm, head). Gradient memory is then one block's
// parameters plus those outside the blocks, instead of the whole model's.
// An error from onBlock stops Backward and is returned by it.
func (m *Model) NewBlockTrainer(onBlock func(l int, grads []*Param) error) *Trainer {
	t := &Trainer{m: m, grads: map[string]*Param{}, byParam: map[*Param][]float32{}, onBlock: onBlock}
	inBlock := map[*Param]bool{}
	for _, ps := range m.blocks {
		for i, p := range ps {
			inBlock[p] = true
			if i == len(t.blockGrads) {
				t.blockGrads = append(t.blockGrads, &Param{})
			}
			if g := t.blockGrads[i]; len(g.Data) < p.Len() {
				g.Data = make([]float32, p.Len())
			}
		}
	}
	for name, p := range m.Params {
		if inBlock[p] {
			continue
		}
		g := &Param{Name: name, Shape: append([]int(nil), p.Shape...), Data: make([]float32, p.Len())}
		t.grads[name] = g
		t.byParam[p] = g.Data
	}
	return t
}

// OutputGrad holds the gradient of a scalar loss with respect to the
// outputs of the last Trainer.Forward. Every field is optional; a nil field
// contributes nothing.
type OutputGrad struct {
	// Logits is shaped like Output.Logits.
	Logits []float32
	// Hidden maps a hidden-state index (as in Output.HiddenStates) onto the
	// gradient with respect to that state, [Batch, Seq, Hidden].
	Hidden map[int][]float32
	// LastHidden is shaped like Output.LastHidden (encoders, ViT).
	LastHidden []float32
	// Pooler is shaped like Output.Pooler.
	Pooler []float32
}

// Forward runs a training forward pass on in. The Output and its slices are
// owned by the Trainer: they stay valid, and must not be modified, until the
// next call of Forward. The parameters must not change between Forward and
// the matching Backward.
func (t *Trainer) Forward(in *Input, opt Options) (*Output, error) {
	B, T, err := t.m.positions(in)
	if err != nil {
		return nil, err
	}
	t.ar.reset()
	t.p = t.m.newPass(B, T, true, &t.ar)
	t.p.recompute = t.Recompute
	t.layer = -1
	t.p.wantHidden = opt.Hidden
	// The pass keeps references to the ids; copy them so the caller may
	// reuse its input buffers.
	cp := *in
	cp.IDs = append([]int(nil), in.IDs...)
	if in.TokenTypes != nil {
		cp.TokenTypes = append([]int(nil), in.TokenTypes...)
	}
	if err := t.p.run(&cp); err != nil {
		return nil, err
	}
	return t.p.output(), nil
}

// errNoForward reports a Backward without a preceding Forward.
var errNoForward = errors.New("transformer: Backward without a preceding Forward")

// Backward propagates g through the last Forward and returns the gradient
// with respect to every parameter, keyed by name and shaped like the
// parameter. A tied LM head contributes to the token-embedding gradient. The
// returned map and its buffers are owned by the Trainer and are overwritten
// by the next Backward.
func (t *Trainer) Backward(g *OutputGrad) (map[string]*Param, error) {
	p := t.p
	if p == nil || t.layer >= 0 {
		return nil, errNoForward
	}
	if err := t.checkGrad(g); err != nil {
		return nil, err
	}
	for _, gr := range t.grads {
		clear(gr.Data)
	}
	if err := p.backward(g, t.byParam, t.block); err != nil {
		return nil, err
	}
	return t.grads, nil
}

// block prepares the gradient buffers of block l before its backward pass
// (when before) or hands them to onBlock after it. Without onBlock the
// block's gradients stay in the Trainer's buffers.
func (t *Trainer) block(l int, before bool) error {
	if t.onBlock == nil {
		return nil
	}
	params := t.m.blocks[l]
	grads := t.blockGrads[:len(params)]
	if before {
		for i, p := range params {
			g := grads[i]
			g.Name, g.Shape, g.Data = p.Name, p.Shape, g.Data[:cap(g.Data)][:p.Len()]
			clear(g.Data)
			t.byParam[p] = g.Data
		}
		return nil
	}
	err := t.onBlock(l, grads)
	for _, p := range params {
		delete(t.byParam, p)
	}
	return err
}

// checkGrad validates the shapes of g against the last pass.
func (t *Trainer) checkGrad(g *OutputGrad) error {
	p := t.p
	if g == nil {
		return fmt.Errorf("transformer: %w: nil OutputGrad", formats.ErrInvalid)
	}
	check := func(what string, got []float32, want int) error {
		if got != nil && len(got) != want {
			return fmt.Errorf("transformer: %w: %s gradient has %d values, want %d", formats.ErrInvalid, what, len(got), want)
		}
		return nil
	}
	nl := 0
	if p.logits != nil {
		nl = len(p.logits)
	}
	if g.Logits != nil && p.logits == nil {
		return fmt.Errorf("transformer: %w: the model has no logits", formats.ErrInvalid)
	}
	if err := check("logits", g.Logits, nl); err != nil {
		return err
	}
	if g.LastHidden != nil && p.n.headKind == HeadLM {
		return fmt.Errorf("transformer: %w: the model has no last_hidden_state output", formats.ErrInvalid)
	}
	if err := check("last hidden state", g.LastHidden, p.N*p.H); err != nil {
		return err
	}
	if g.Pooler != nil && p.pooled == nil {
		return fmt.Errorf("transformer: %w: the model has no pooler", formats.ErrInvalid)
	}
	if err := check("pooler", g.Pooler, p.B*p.H); err != nil {
		return err
	}
	for i, h := range g.Hidden {
		if i < 0 || i > len(p.n.layers) {
			return fmt.Errorf("transformer: %w: hidden state %d outside [0,%d]", formats.ErrInvalid, i, len(p.n.layers))
		}
		if err := check(fmt.Sprintf("hidden state %d", i), h, p.N*p.H); err != nil {
			return err
		}
	}
	return nil
}

// addHidden adds the gradient of hidden state i, if any, to dx.
func addHidden(g *OutputGrad, i int, dx []float32) {
	if h := g.Hidden[i]; h != nil {
		addTo(dx, h)
	}
}

// backward runs the backward pass, accumulating parameter gradients into
// grad (keyed by parameter).
func (p *pass) backward(g *OutputGrad, grad map[*Param][]float32, block func(l int, before bool) error) error {
	gb := func(q *Param) []float32 {
		if q == nil {
			return nil
		}
		return grad[q]
	}
	dHead := p.ar.zeros(p.N * p.H)
	p.headBackward(g, dHead, gb)
	dx := p.finalNormBackward(g, dHead, gb)
	if err := p.blocksBackward(g, dx, gb, block); err != nil {
		return err
	}
	p.embedBackward(dx, gb)
	return nil
}

// headBackward adds the gradients of the head (LM head, BERT pooler or ViT
// classifier) and writes into dHead the gradient with respect to the head's
// input.
func (p *pass) headBackward(g *OutputGrad, dHead []float32, gb func(*Param) []float32) {
	n, N, H, T := p.n, p.N, p.H, p.T
	switch n.headKind {
	case HeadLM:
		if g.Logits != nil {
			V := n.lm.out
			n.lm.backwardInput(p.gemm, N, g.Logits, V, dHead, H, 0)
			n.lm.backwardWeight(p.gemm, N, p.headIn, H, g.Logits, V, gb(n.lm.w))
			if n.lm.b != nil {
				columnSums(p.workers, N, g.Logits, V, 0, gb(n.lm.b))
			}
		}
	case HeadEncoder:
		if g.LastHidden != nil {
			addTo(dHead, g.LastHidden)
		}
		if g.Pooler != nil && n.pooler != nil {
			dpre := p.ar.alloc(p.B * H)
			for i, v := range p.pooled {
				dpre[i] = g.Pooler[i] * (1 - v*v)
			}
			n.pooler.backwardInput(p.gemm, p.B, dpre, H, dHead, T*H, 1)
			n.pooler.backwardWeight(p.gemm, p.B, p.headIn, T*H, dpre, H, gb(n.pooler.w))
			if n.pooler.b != nil {
				columnSums(p.workers, p.B, dpre, H, 0, gb(n.pooler.b))
			}
		}
	case HeadClassifier:
		if g.LastHidden != nil {
			addTo(dHead, g.LastHidden)
		}
		if g.Logits != nil {
			c := &n.classifier
			c.backwardInput(p.gemm, p.B, g.Logits, c.out, dHead, T*H, 1)
			c.backwardWeight(p.gemm, p.B, p.headIn, T*H, g.Logits, c.out, gb(c.w))
			if c.b != nil {
				columnSums(p.workers, p.B, g.Logits, c.out, 0, gb(c.b))
			}
		}
	}
}

// finalNormBackward runs the final norm's backward pass (when the network
// has one) on dHead, adds the gradient of the last hidden state, and
// returns the gradient with respect to the last block's output.
func (p *pass) finalNormBackward(g *OutputGrad, dHead []float32, gb func(*Param) []float32) []float32 {
	n, L := p.n, len(p.n.layers)
	dx := dHead
	if n.final == nil {
		addHidden(g, L, dx)
		return dx
	}
	if n.finalInHidden {
		addHidden(g, L, dHead)
	}
	normBackward(n.final, p.workers, p.N, p.H, p.xL, p.fMean, p.fR, dHead, dx, false, gb(n.final.w), gb(n.final.b))
	if !n.finalInHidden {
		addHidden(g, L, dx)
	}
	return dx
}

// blocksBackward runs the blocks' backward passes from the last to the
// first, replacing dx by the gradient with respect to each block's input;
// a streamed model's block weights are filled just before and dropped just
// after, and block is called around each.
func (p *pass) blocksBackward(g *OutputGrad, dx []float32, gb func(*Param) []float32, block func(l int, before bool) error) error {
	n := p.n
	s := &backScratch{}
	st := p.m.stream
	if st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
	}
	for l := len(n.layers) - 1; l >= 0; l-- {
		if err := block(l, true); err != nil {
			return err
		}
		if st != nil {
			if err := st.fill(p.m.blocks[l], l); err != nil {
				return err
			}
		}
		if p.recompute {
			p.recomputing = true
			p.layerForward(l, &p.layers[l], p.layers[l].in)
			p.recomputing = false
		}
		p.layerBackward(&n.layers[l], &p.layers[l], dx, s, gb)
		if st != nil {
			st.drop(p.m.blocks[l])
		}
		if err := block(l, false); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		addHidden(g, l, dx)
	}
	return nil
}

// backScratch holds the buffers one block's backward pass needs; they are
// shared by all blocks.
type backScratch struct {
	dh, dact, dgu, datt, dqkv []float32
}

// get returns *b resized to n values, from the pass arena when it is too
// small.
func (p *pass) scratch(b *[]float32, n int) []float32 {
	if cap(*b) < n {
		*b = p.ar.alloc(n)
	}
	*b = (*b)[:n]
	return *b
}

// layerBackward replaces dx, the gradient with respect to the block output,
// by the gradient with respect to the block input, and accumulates the
// block's parameter gradients.
func (p *pass) layerBackward(l *layer, t *layerTape, dx []float32, s *backScratch, gb func(*Param) []float32) {
	dh := p.scratch(&s.dh, p.N*p.H)
	p.mlpHalfBackward(l, t, dx, dh, s, gb)
	p.attentionHalfBackward(l, t, dx, dh, s, gb)
}

// mlpHalfBackward turns dx, ∂L/∂(block output), into ∂L/∂mid through the
// MLP half of the block (mlpHalf), accumulating its parameter gradients. dh
// is scratch of N×H values.
func (p *pass) mlpHalfBackward(l *layer, t *layerTape, dx, dh []float32, s *backScratch, gb func(*Param) []float32) {
	N, H := p.N, p.H
	mp := &l.mlp
	I, Wm := mp.up.out, mp.width()
	if l.post {
		// out = Norm2(y2): dx becomes ∂L/∂y2.
		normBackward(&l.n2, p.workers, N, H, t.y2, t.mean2, t.r2, dx, dx, false, gb(l.n2.w), gb(l.n2.b))
	}
	// Down projection; dx is ∂L/∂(its output).
	dact := p.scratch(&s.dact, N*I)
	mp.down.backwardInput(p.gemm, N, dx, H, dact, I, 0)
	mp.down.backwardWeight(p.gemm, N, t.act, I, dx, H, gb(mp.down.w))
	if mp.down.b != nil {
		columnSums(p.workers, N, dx, H, 0, gb(mp.down.b))
	}
	dgu := p.scratch(&s.dgu, N*Wm)
	mlpActivateBackward(mp, p.workers, N, t.gu, dact, dgu)
	// dh = ∂L/∂mlpIn through the MLP (plus the residual for post-norm).
	beta := float32(0)
	if l.post {
		copy(dh, dx)
		beta = 1
	}
	if mp.gated {
		mp.gate.backwardInput(p.gemm, N, dgu, Wm, dh, H, beta)
		mp.up.backwardInput(p.gemm, N, dgu[I:], Wm, dh, H, 1)
		mp.gate.backwardWeight(p.gemm, N, t.mlpIn, H, dgu, Wm, gb(mp.gate.w))
		mp.up.backwardWeight(p.gemm, N, t.mlpIn, H, dgu[I:], Wm, gb(mp.up.w))
		if mp.gate.b != nil {
			columnSums(p.workers, N, dgu, Wm, 0, gb(mp.gate.b))
		}
		if mp.up.b != nil {
			columnSums(p.workers, N, dgu, Wm, I, gb(mp.up.b))
		}
	} else {
		mp.up.backwardInput(p.gemm, N, dgu, Wm, dh, H, beta)
		mp.up.backwardWeight(p.gemm, N, t.mlpIn, H, dgu, Wm, gb(mp.up.w))
		if mp.up.b != nil {
			columnSums(p.workers, N, dgu, Wm, 0, gb(mp.up.b))
		}
	}
	if l.post {
		// mlpIn = Norm1(mid): dx becomes ∂L/∂mid.
		normBackward(&l.n1, p.workers, N, H, t.mid, t.mean1, t.r1, dh, dx, false, gb(l.n1.w), gb(l.n1.b))
	} else {
		// mlpIn = Norm2(mid), out = mid + MLP: dx becomes ∂L/∂mid.
		normBackward(&l.n2, p.workers, N, H, t.mid, t.mean2, t.r2, dh, dx, true, gb(l.n2.w), gb(l.n2.b))
	}
}

// attentionHalfBackward turns dx, ∂L/∂mid, into ∂L/∂(block input) through
// the attention half of the block (attentionHalf), accumulating its
// parameter gradients. dh is scratch of N×H values.
func (p *pass) attentionHalfBackward(l *layer, t *layerTape, dx, dh []float32, s *backScratch, gb func(*Param) []float32) {
	N, H := p.N, p.H
	a := &l.attn
	A, W := a.nh*a.hd, a.width()
	// Output projection: mid = in + O(att).
	datt := p.scratch(&s.datt, N*A)
	a.o.backwardInput(p.gemm, N, dx, H, datt, A, 0)
	a.o.backwardWeight(p.gemm, N, t.att, A, dx, H, gb(a.o.w))
	if a.o.b != nil {
		columnSums(p.workers, N, dx, H, 0, gb(a.o.b))
	}
	dqkv := p.scratch(&s.dqkv, N*W)
	attentionBackward(p.geom(a), p.workers, t.qkv, t.att, t.lse, datt, dqkv)
	p.projectBackward(a, dqkv, gb)
	// ∂L/∂attnIn: into dx directly for post-norm (attnIn = in), else into
	// dh and then through Norm1.
	dst, beta := dh, float32(0)
	if l.post {
		dst, beta = dx, 1
	}
	qd, kd := a.nh*a.hd, a.nkv*a.hd
	if a.fused {
		a.qkv.backwardInput(p.gemm, N, dqkv, W, dst, H, beta)
		a.qkv.backwardWeight(p.gemm, N, t.attnIn, H, dqkv, W, gb(a.qkv.w))
	} else {
		a.q.backwardInput(p.gemm, N, dqkv, W, dst, H, beta)
		a.k.backwardInput(p.gemm, N, dqkv[qd:], W, dst, H, 1)
		a.v.backwardInput(p.gemm, N, dqkv[qd+kd:], W, dst, H, 1)
		a.q.backwardWeight(p.gemm, N, t.attnIn, H, dqkv, W, gb(a.q.w))
		a.k.backwardWeight(p.gemm, N, t.attnIn, H, dqkv[qd:], W, gb(a.k.w))
		a.v.backwardWeight(p.gemm, N, t.attnIn, H, dqkv[qd+kd:], W, gb(a.v.w))
	}
	if !l.post {
		normBackward(&l.n1, p.workers, N, H, t.in, t.mean1, t.r1, dh, dx, true, gb(l.n1.w), gb(l.n1.b))
	}
}

// projectBackward undoes the rotary embedding on the query and key
// gradients in dqkv and accumulates the q/k/v bias gradients.
func (p *pass) projectBackward(a *attention, dqkv []float32, gb func(*Param) []float32) {
	N, W := p.N, a.width()
	if a.theta != 0 {
		rt := p.rope(a.hd, a.theta)
		forChunks(p.workers, N, 64, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				row := dqkv[i*W : i*W+W]
				t := i % p.T
				for h := 0; h < a.nh+a.nkv; h++ {
					rt.rotateBack(row[h*a.hd:(h+1)*a.hd], t)
				}
			}
		})
	}
	qd, kd := a.nh*a.hd, a.nkv*a.hd
	if a.fused {
		if a.qkv.b != nil {
			columnSums(p.workers, N, dqkv, W, 0, gb(a.qkv.b))
		}
		return
	}
	for i, l := range []*linear{&a.q, &a.k, &a.v} {
		if l.b != nil {
			columnSums(p.workers, N, dqkv, W, []int{0, qd, qd + kd}[i], gb(l.b))
		}
	}
}

// embedBackward accumulates the embedding gradients from dx, the gradient
// with respect to the embedding output. dx may be overwritten.
func (p *pass) embedBackward(dx []float32, gb func(*Param) []float32) {
	n, N, H, T := p.n, p.N, p.H, p.T
	if n.embNorm != nil {
		normBackward(n.embNorm, p.workers, N, H, p.embSum, p.embMean, p.embR, dx, dx, false, gb(n.embNorm.w), gb(n.embNorm.b))
	}
	if pt := n.patch; pt != nil {
		np := T - 1
		K := pt.ch * pt.size * pt.size
		dw := gb(pt.w)
		for b := range p.B {
			p.gemm.Sgemm(true, false, H, K, np, 1, dx[(b*T+1)*H:], H, p.patches[b*np*K:], K, 1, dw, K)
		}
		dpos, dcls := gb(pt.pos), gb(pt.cls)
		var dbias []float32
		if pt.b != nil {
			dbias = gb(pt.b)
		}
		for i := range N {
			t := i % T
			r := dx[i*H : i*H+H]
			addTo(dpos[t*H:t*H+H], r)
			if t == 0 {
				addTo(dcls, r)
			} else if dbias != nil {
				addTo(dbias, r)
			}
		}
		return
	}
	// Scatter-add by column ranges so that goroutines never share a row
	// segment of the gradient.
	dtok, dpos, dtyp := gb(n.tokens), gb(n.positions), gb(n.types)
	forChunks(p.workers, H, 16, func(_, c0, c1 int) {
		for i := range N {
			r := dx[i*H+c0 : i*H+c1]
			id := p.ids[i]
			addTo(dtok[id*H+c0:id*H+c1], r)
			if dpos != nil {
				t := i % T
				addTo(dpos[t*H+c0:t*H+c1], r)
			}
			if dtyp != nil {
				tt := 0
				if p.types != nil {
					tt = p.types[i]
				}
				addTo(dtyp[tt*H+c0:tt*H+c1], r)
			}
		}
	})
}
