package transformer

import (
	"math"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// layerTape holds what one block computed. In a training pass every block
// has its own tape and nothing is overwritten; in an inference pass one tape
// is shared by all blocks and the residual stream is updated in place.
type layerTape struct {
	in        []float32 // block input [N, H]
	attnIn    []float32 // input of the q/k/v projection: norm1 output (pre-norm) or in (post-norm)
	qkv       []float32 // queries (rotated), keys (rotated), values [N, W]
	att       []float32 // attention output, input of the output projection [N, nh·hd]
	lse       []float32 // score-row log-sum-exp [B, nh, T]
	mid       []float32 // residual after attention: in + O(att) (+ bias)
	mlpIn     []float32 // input of the MLP: norm2 output (pre-norm) or norm1 output (post-norm)
	gu        []float32 // MLP pre-activation [N, mlp width]
	act       []float32 // MLP activation [N, intermediate]
	y2        []float32 // post-norm only: mlpIn + Down(act), the norm2 input
	out       []float32 // block output [N, H]
	mean1, r1 []float32 // norm1 statistics
	mean2, r2 []float32 // norm2 statistics
}

// pass is one forward (and, for training, backward) evaluation.
type pass struct {
	m       *Model
	n       *network
	B, T, N int
	H       int
	workers int
	gemm    kernels.Options
	train   bool
	// recompute (training passes only) keeps just each block's input and
	// output; the rest of a block's tape lives in shared buffers and is
	// computed again, block by block, during the backward pass, where
	// recomputing is set.
	recompute, recomputing bool
	ar                     *arena
	ropes                  map[[2]float64]*ropeTable
	// start is the position of the first token of every sequence: 0 for a
	// whole-sequence pass, the number of cached positions for a decoding
	// step.
	start int
	// cache, when not nil, holds the keys and values of earlier positions;
	// attention then reads them instead of attending within the pass.
	cache *kvCache

	ids, types []int
	// embedding tape
	embSum      []float32 // pre-norm embedding sum (embedding norm only)
	embMean     []float32
	embR        []float32
	patches     []float32 // ViT im2col [B·patches, C·size·size]
	x0          []float32 // embedding output [N, H]
	layers      []layerTape
	shared      layerTape
	xL          []float32 // last block output
	headIn      []float32 // final norm output (or xL without final norm)
	fMean, fR   []float32
	pooled      []float32
	hidden      [][]float32
	wantHidden  bool
	logits      []float32
	logitsShape []int
}

func (m *Model) newPass(B, T int, train bool, ar *arena) *pass {
	w := m.workers()
	p := &pass{m: m, n: &m.net, B: B, T: T, N: B * T, H: m.net.hidden, workers: w,
		gemm: kernels.Options{Threads: w}, train: train, ar: ar, ropes: map[[2]float64]*ropeTable{}}
	if train {
		p.layers = make([]layerTape, len(m.net.layers))
	}
	return p
}

// stat returns a buffer for per-row statistics, or nil when they need not
// be kept.
func (p *pass) stat() []float32 {
	if !p.train {
		return nil
	}
	return p.ar.alloc(p.N)
}

// buf returns a buffer of n values: a fresh one in a training pass, the
// shared slot *slot (grown as needed) in an inference pass.
func (p *pass) buf(slot *[]float32, n int) []float32 {
	if p.train && !p.recompute {
		return p.ar.alloc(n)
	}
	if cap(*slot) < n {
		*slot = p.ar.alloc(n)
	}
	*slot = (*slot)[:n]
	return *slot
}

// result returns a buffer for an output tensor: arena memory in a training
// pass (owned by the Trainer), fresh memory in an inference pass (owned by
// the caller, while the arena goes back to the model's pool).
func (p *pass) result(n int) []float32 {
	if p.train {
		return p.ar.alloc(n)
	}
	return make([]float32, n)
}

func (p *pass) rope(hd int, theta float64) *ropeTable {
	k := [2]float64{float64(hd), theta}
	if rt, ok := p.ropes[k]; ok {
		return rt
	}
	rt := newRopeTable(p.start+p.T, hd, theta)
	p.ropes[k] = rt
	return rt
}

// run evaluates the network on in. It fails only when a streamed model
// cannot fill a block's weights.
func (p *pass) run(in *Input) error {
	s := p.m.stream
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	p.ids, p.types = in.IDs, in.TokenTypes
	x := p.embed(in)
	p.x0 = x
	p.snapshot(x)
	for i := range p.n.layers {
		t := &p.shared
		if p.train {
			t = &p.layers[i]
		}
		if s != nil {
			if err := s.fill(p.m.blocks[i], i); err != nil {
				return err
			}
		}
		x = p.layerForward(i, t, x)
		if s != nil {
			s.drop(p.m.blocks[i])
		}
		if i < len(p.n.layers)-1 || !p.n.finalInHidden || p.n.final == nil {
			p.snapshot(x)
		}
	}
	p.xL = x
	p.head()
	return nil
}

// snapshot records a hidden state when they are requested.
func (p *pass) snapshot(x []float32) {
	if !p.wantHidden {
		return
	}
	if p.train { // training buffers are never overwritten
		p.hidden = append(p.hidden, x)
		return
	}
	p.hidden = append(p.hidden, append([]float32(nil), x...))
}

// embed computes the embedding output.
func (p *pass) embed(in *Input) []float32 {
	n, N, H, T := p.n, p.N, p.H, p.T
	if n.patch != nil {
		return p.embedPatches(in.Pixels)
	}
	x := p.ar.alloc(N * H)
	if n.embNorm != nil {
		p.embSum = x
	}
	forChunks(p.workers, N, 256, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			r := x[i*H : i*H+H]
			id := p.ids[i]
			if n.tokensOp != nil {
				n.tokensOp.Row(id, r)
			} else {
				copy(r, n.tokens.Data[id*H:id*H+H])
			}
			if n.positions != nil {
				t := p.start + i%T
				addTo(r, n.positions.Data[t*H:t*H+H])
			}
			if n.types != nil {
				tt := 0
				if p.types != nil {
					tt = p.types[i]
				}
				addTo(r, n.types.Data[tt*H:tt*H+H])
			}
		}
	})
	if n.embNorm == nil {
		return x
	}
	y := p.ar.alloc(N * H)
	p.embMean, p.embR = p.stat(), p.stat()
	normForward(n.embNorm, p.workers, N, H, x, y, p.embMean, p.embR)
	return y
}

// embedPatches computes the ViT embedding: patch convolution (as a product
// with the im2col matrix), CLS token and position embeddings.
func (p *pass) embedPatches(px []float32) []float32 {
	pt, H, T := p.n.patch, p.H, p.T
	np := T - 1
	K := pt.ch * pt.size * pt.size
	cols := make([]float32, p.B*np*K)
	pw := pt.w_ / pt.size
	for b := range p.B {
		for pi := range np {
			py, pxx := pi/pw, pi%pw
			dst := cols[(b*np+pi)*K:]
			k := 0
			for c := range pt.ch {
				for ky := range pt.size {
					src := px[((b*pt.ch+c)*pt.h+py*pt.size+ky)*pt.w_+pxx*pt.size:]
					copy(dst[k:k+pt.size], src[:pt.size])
					k += pt.size
				}
			}
		}
	}
	p.patches = cols
	x := p.ar.alloc(p.N * H)
	for b := range p.B {
		p.gemm.Sgemm(false, true, np, H, K, 1, cols[b*np*K:], K, pt.w.Data, K, 0, x[(b*T+1)*H:], H)
		copy(x[b*T*H:b*T*H+H], pt.cls.Data)
	}
	for i := range p.N {
		t := i % T
		r := x[i*H : i*H+H]
		if t > 0 && pt.b != nil {
			addTo(r, pt.b.Data)
		}
		addTo(r, pt.pos.Data[t*H:t*H+H])
	}
	return x
}

// layerForward runs block li on x and returns its output.
func (p *pass) layerForward(li int, t *layerTape, x []float32) []float32 {
	l := &p.n.layers[li]
	t.in = x
	if p.train {
		t.mean1, t.r1, t.mean2, t.r2 = p.stat(), p.stat(), p.stat(), p.stat()
	}
	p.attentionHalf(li, l, t, x)
	return p.mlpHalf(l, t, x)
}

// attentionHalf runs the attention half of block li on x: the input
// norm (pre-norm blocks), attention and the residual sum, left in t.mid.
func (p *pass) attentionHalf(li int, l *layer, t *layerTape, x []float32) {
	N, H := p.N, p.H
	a := &l.attn
	if l.post {
		t.attnIn = x
	} else {
		t.attnIn = p.buf(&p.shared.attnIn, N*H)
		normForward(&l.n1, p.workers, N, H, x, t.attnIn, t.mean1, t.r1)
	}
	t.qkv = p.buf(&p.shared.qkv, N*a.width())
	p.project(a, t.attnIn, t.qkv)
	t.att = p.buf(&p.shared.att, N*a.nh*a.hd)
	if p.train {
		t.lse = p.ar.alloc(p.B * a.nh * p.T)
	}
	if p.cache != nil {
		p.cache.attend(li, a, p.workers, p.T, t.qkv, t.att)
	} else {
		attentionForward(p.geom(a), p.workers, t.qkv, t.att, t.lse)
	}
	// Residual after attention.
	if p.train || l.post {
		t.mid = p.buf(&p.shared.mid, N*H)
		copy(t.mid, x)
	} else {
		t.mid = x
	}
	if a.o.b != nil {
		addRows(p.workers, N, t.mid, H, a.o.b.Data)
	}
	a.o.forward(p.gemm, N, t.att, a.nh*a.hd, t.mid, H, 1)
}

// mlpHalf runs the MLP half of a block from t.mid: the norm, the MLP,
// the residual sum and, for post-norm blocks, the output norm. x is the
// block's input, whose buffer an inference pass reuses for the output.
func (p *pass) mlpHalf(l *layer, t *layerTape, x []float32) []float32 {
	N, H := p.N, p.H
	t.mlpIn = p.buf(&p.shared.mlpIn, N*H)
	if l.post {
		normForward(&l.n1, p.workers, N, H, t.mid, t.mlpIn, t.mean1, t.r1)
	} else {
		normForward(&l.n2, p.workers, N, H, t.mid, t.mlpIn, t.mean2, t.r2)
	}
	mp := &l.mlp
	t.gu = p.buf(&p.shared.gu, N*mp.width())
	if mp.gated && N == 1 && mp.gate.op != nil && mp.up.op != nil {
		forwardRow(p.gemm, t.mlpIn[:H], []rowOut{{&mp.gate, t.gu[:mp.up.out], 0}, {&mp.up, t.gu[mp.up.out:mp.width()], 0}})
	} else if mp.gated {
		mp.gate.forward(p.gemm, N, t.mlpIn, H, t.gu, mp.width(), 0)
		mp.up.forward(p.gemm, N, t.mlpIn, H, t.gu[mp.up.out:], mp.width(), 0)
	} else {
		mp.up.forward(p.gemm, N, t.mlpIn, H, t.gu, mp.width(), 0)
	}
	t.act = p.buf(&p.shared.act, N*mp.up.out)
	mlpActivate(mp, p.workers, N, t.gu, t.act)

	// Residual after the MLP.
	var res []float32
	switch {
	case l.post:
		res = p.buf(&p.shared.y2, N*H)
		copy(res, t.mlpIn)
		t.y2 = res
	case p.train:
		res = p.blockOut(N * H)
		copy(res, t.mid)
	default:
		res = t.mid
	}
	if mp.down.b != nil {
		addRows(p.workers, N, res, H, mp.down.b.Data)
	}
	mp.down.forward(p.gemm, N, t.act, mp.up.out, res, H, 1)
	if !l.post {
		t.out = res
		return res
	}
	if p.train {
		t.out = p.blockOut(N * H)
	} else {
		t.out = x
	}
	normForward(&l.n2, p.workers, N, H, t.y2, t.out, t.mean2, t.r2)
	return t.out
}

// blockOut returns the buffer of a block's output in a training pass: kept
// for the whole pass (it is the next block's input), except while a block
// is recomputed in the backward pass, whose output nobody reads.
func (p *pass) blockOut(n int) []float32 {
	if p.recomputing {
		return p.buf(&p.shared.out, n)
	}
	return p.ar.alloc(n)
}

// geom returns the attention geometry of a block for this pass.
func (p *pass) geom(a *attention) attnGeom {
	return attnGeom{B: p.B, T: p.T, nh: a.nh, nkv: a.nkv, hd: a.hd, ld: a.width(), ldo: a.nh * a.hd, causal: a.causal, scale: a.scale, block: attnBlock}
}

// project computes the q|k|v buffer from h: the projections, their biases
// and the rotary embedding of queries and keys.
func (p *pass) project(a *attention, h, qkv []float32) {
	N, H, W := p.N, p.H, a.width()
	qd, kd := a.nh*a.hd, a.nkv*a.hd
	var bias []float32
	if a.fused {
		a.qkv.forward(p.gemm, N, h, H, qkv, W, 0)
		if a.qkv.b != nil {
			bias = a.qkv.b.Data
		}
	} else if N == 1 && a.q.op != nil && a.k.op != nil && a.v.op != nil {
		forwardRow(p.gemm, h[:H], []rowOut{{&a.q, qkv[:qd], 0}, {&a.k, qkv[qd : qd+kd], 0}, {&a.v, qkv[qd+kd : W], 0}})
	} else {
		a.q.forward(p.gemm, N, h, H, qkv, W, 0)
		a.k.forward(p.gemm, N, h, H, qkv[qd:], W, 0)
		a.v.forward(p.gemm, N, h, H, qkv[qd+kd:], W, 0)
		if a.q.b != nil || a.k.b != nil || a.v.b != nil {
			bias = make([]float32, W)
			for i, l := range []*linear{&a.q, &a.k, &a.v} {
				if l.b != nil {
					copy(bias[[]int{0, qd, qd + kd}[i]:], l.b.Data)
				}
			}
		}
	}
	var rt *ropeTable
	if a.theta != 0 {
		rt = p.rope(a.hd, a.theta)
	}
	if bias == nil && rt == nil {
		return
	}
	forChunks(p.workers, N, 64, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			row := qkv[i*W : i*W+W]
			if bias != nil {
				addTo(row, bias)
			}
			if rt != nil {
				rt.rotateHeads(row, a.nh+a.nkv, p.start+i%p.T)
			}
		}
	})
}

// head computes the final norm and the output head.
func (p *pass) head() {
	n, N, H := p.n, p.N, p.H
	x := p.xL
	p.headIn = x
	if n.final != nil {
		p.headIn = p.ar.alloc(N * H)
		p.fMean, p.fR = p.stat(), p.stat()
		normForward(n.final, p.workers, N, H, x, p.headIn, p.fMean, p.fR)
		if n.finalInHidden {
			p.snapshot(p.headIn)
		}
	}
	switch n.headKind {
	case HeadLM:
		V := n.lm.out
		p.logits = p.result(N * V)
		n.lm.forward(p.gemm, N, p.headIn, H, p.logits, V, 0)
		if n.lm.b != nil {
			addRows(p.workers, N, p.logits, V, n.lm.b.Data)
		}
		p.logitsShape = []int{p.B, p.T, V}
	case HeadEncoder:
		if n.pooler != nil {
			p.pooled = p.result(p.B * H)
			n.pooler.forward(p.gemm, p.B, p.headIn, p.T*H, p.pooled, H, 0)
			for b := range p.B {
				r := p.pooled[b*H : b*H+H]
				if n.pooler.b != nil {
					addTo(r, n.pooler.b.Data)
				}
				for j, v := range r {
					r[j] = float32(math.Tanh(float64(v)))
				}
			}
		}
	case HeadClassifier:
		c := &n.classifier
		p.logits = p.result(p.B * c.out)
		c.forward(p.gemm, p.B, p.headIn, p.T*H, p.logits, c.out, 0)
		if c.b != nil {
			addRows(p.workers, p.B, p.logits, c.out, c.b.Data)
		}
		p.logitsShape = []int{p.B, c.out}
	}
}

// output assembles the Output of the pass.
func (p *pass) output() *Output {
	o := &Output{Batch: p.B, Seq: p.T, Hidden: p.H, Logits: p.logits, LogitsShape: p.logitsShape,
		Pooler: p.pooled, HiddenStates: p.hidden}
	if p.n.headKind != HeadLM {
		o.LastHidden = p.headIn
		if !p.train {
			o.LastHidden = append([]float32(nil), p.headIn...)
		}
	}
	return o
}

// Forward runs the model on in. It is safe to call concurrently.
func (m *Model) Forward(in *Input, opt Options) (*Output, error) {
	B, T, err := m.positions(in)
	if err != nil {
		return nil, err
	}
	ar, _ := m.arenas.Get().(*arena)
	if ar == nil {
		ar = &arena{}
	}
	ar.reset()
	p := m.newPass(B, T, false, ar)
	p.wantHidden = opt.Hidden
	if err := p.run(in); err != nil {
		m.arenas.Put(ar)
		return nil, err
	}
	out := p.output()
	m.arenas.Put(ar)
	return out, nil
}
