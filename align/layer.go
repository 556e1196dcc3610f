package align

import (
	"math"

	"github.com/vlora-convert/vlora-convert/internal/assign"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// weights holds the seven matrices of one layer, float32 row-major, in the
// shapes of the checkpoint: q, k, v (rows are head dims), o, gate, up, down.
type weights struct{ q, k, v, o, gate, up, down []float32 }

// matrices lists the matrices of w with their roles.
func (w *weights) matrices() []struct {
	r role
	m *[]float32
} {
	return []struct {
		r role
		m *[]float32
	}{{qWeight, &w.q}, {kWeight, &w.k}, {vWeight, &w.v}, {oWeight, &w.o}, {gateWeight, &w.gate}, {upWeight, &w.up}, {downWeight, &w.down}}
}

// clone returns a deep copy of w.
func (w *weights) clone() *weights {
	c := &weights{}
	cm := c.matrices()
	for i, m := range w.matrices() {
		*cm[i].m = append([]float32(nil), (*m.m)...)
	}
	return c
}

// solveLayer returns the transform that brings layer x closest to ref.
func solveLayer(lay *Layout, x, ref *weights) (*Transform, error) {
	t := &Transform{}
	var err error
	if t.Neurons, err = solveMLP(lay, x, ref); err != nil {
		return nil, err
	}
	if err := solveAttention(lay, x, ref, t); err != nil {
		return nil, err
	}
	return t, nil
}

// frob returns the Frobenius norm of a.
func frob(a []float32) float64 {
	var s float64
	for _, v := range a {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// scale returns 1/(‖a‖·‖b‖), or 0 when either is zero: every matrix kind
// enters the similarities normalized, so that each counts alike.
func scale(a, b []float32) float32 {
	n := frob(a) * frob(b)
	if n == 0 {
		return 0
	}
	return float32(1 / n)
}

// solveMLP permutes the intermediate neurons of x to maximize the summed
// inner product of the concatenated [gate row, up row, down column] vectors
// with those of ref, each matrix normalized by its Frobenius norm. It
// returns Transform.Neurons.
func solveMLP(lay *Layout, x, ref *weights) ([]int, error) {
	n, h := lay.Intermediate, lay.Hidden
	s := make([]float32, n*n) // s[i·n+j] = similarity of x's neuron i and ref's neuron j
	kernels.Sgemm(false, true, n, n, h, scale(x.gate, ref.gate), x.gate, h, ref.gate, h, 0, s, n)
	kernels.Sgemm(false, true, n, n, h, scale(x.up, ref.up), x.up, h, ref.up, h, 1, s, n)
	kernels.Sgemm(true, false, n, n, h, scale(x.down, ref.down), x.down, n, ref.down, n, 1, s, n)
	s64 := make([]float64, len(s))
	for i, v := range s {
		s64[i] = float64(v)
	}
	col, err := assign.Max(s64, n, n)
	if err != nil {
		return nil, err
	}
	perm := make([]int, n)
	for i, j := range col {
		perm[j] = i
	}
	return perm, nil
}

// crossRows returns ref·xᵀ for two rows×cols matrices, scaled: block (i, j)
// of hd×hd is Y·Xᵀ for ref head i and x head j.
func crossRows(ref, x []float32, rows, cols int) []float32 {
	c := make([]float32, rows*rows)
	kernels.Sgemm(false, true, rows, rows, cols, scale(ref, x), ref, cols, x, cols, 0, c, rows)
	return c
}

// block returns block (i, j) of the hd×hd blocks of the n×n matrix c.
func block(c []float32, n, hd, i, j int) []float64 {
	b := make([]float64, hd*hd)
	for a := range hd {
		row := c[(i*hd+a)*n+j*hd : (i*hd+a)*n+(j+1)*hd]
		for k, v := range row {
			b[a*hd+k] = float64(v)
		}
	}
	return b
}

// attnCross holds the scaled cross products of one layer's attention with
// the reference's, blocks indexed (reference head, layer head).
type attnCross struct {
	q, k, v, o []float32
	nq, nkv    int
}

// groupFit is the alignment of one key/value group of the layer to one of
// the reference.
type groupFit struct {
	within []int     // within[x] = y: query head x of the group goes to y
	planes []float64 // cos, sin per rotary plane
	r      []float64 // value/output rotation
	value  float64   // summed similarity achieved
}

// solveAttention sets t.KVHeads, t.Heads, t.VO and t.Planes: every pair
// of key/value groups (a of x, b of ref) is fitted (fitGroup), and the
// groups are assigned on the fitted similarities.
func solveAttention(lay *Layout, x, ref *weights, t *Transform) error {
	hd, h, g := lay.HeadDim, lay.Hidden, lay.group()
	nq, nkv := lay.Heads*hd, lay.KVHeads*hd
	c := &attnCross{
		q: crossRows(ref.q, x.q, nq, h), k: crossRows(ref.k, x.k, nkv, h), v: crossRows(ref.v, x.v, nkv, h),
		o: make([]float32, nq*nq), nq: nq, nkv: nkv,
	}
	// Columns of o_proj transform as rows of Oᵀ: ref.oᵀ·x.o.
	kernels.Sgemm(true, false, nq, nq, h, scale(ref.o, x.o), ref.o, nq, x.o, nq, 0, c.o, nq)
	n := lay.KVHeads
	fits := make([]groupFit, n*n)
	s := make([]float64, n*n)
	for a := range n {
		for b := range n {
			f, err := fitGroup(lay, c, a, b)
			if err != nil {
				return err
			}
			fits[a*n+b], s[a*n+b] = f, f.value
		}
	}
	col, err := assign.Max(s, n, n)
	if err != nil {
		return err
	}
	t.KVHeads, t.Heads = make([]int, n), make([]int, lay.Heads)
	t.VO, t.Planes = make([][]float64, n), make([][]float64, n)
	for a, b := range col {
		f := fits[a*n+b]
		t.KVHeads[b], t.VO[b], t.Planes[b] = a, f.r, f.planes
		for xh, y := range f.within {
			t.Heads[b*g+y] = a*g + xh
		}
	}
	return nil
}

// fitGroup aligns key/value group a of the layer to group b of the
// reference: the query heads are matched on rotation-invariant similarities
// (the best 2-D rotation per rotary plane, the nuclear norm for the output
// columns), the rotations are fitted to the match, and the heads are
// matched again under those rotations.
func fitGroup(lay *Layout, c *attnCross, a, b int) (groupFit, error) {
	hd, g := lay.HeadDim, lay.group()
	qb := func(y, x int) []float64 { return block(c.q, c.nq, hd, b*g+y, a*g+x) }
	ob := func(y, x int) []float64 { return block(c.o, c.nq, hd, b*g+y, a*g+x) }
	w := make([]float64, g*g)
	for x := range g {
		for y := range g {
			o, err := nuclear(ob(y, x), hd)
			if err != nil {
				return groupFit{}, err
			}
			w[x*g+y] = planesInvariant(qb(y, x), hd) + o
		}
	}
	within, err := assign.Max(w, g, g)
	if err != nil {
		return groupFit{}, err
	}
	fit, err := fitRotations(lay, c, a, b, within)
	if err != nil {
		return groupFit{}, err
	}
	for x := range g {
		for y := range g {
			w[x*g+y] = planesScore(qb(y, x), hd, fit.planes) + traceRtM(fit.r, ob(y, x))
		}
	}
	if within, err = assign.Max(w, g, g); err != nil {
		return groupFit{}, err
	}
	refit, err := fitRotations(lay, c, a, b, within)
	if err != nil {
		return groupFit{}, err
	}
	if refit.value > fit.value {
		fit = refit
	}
	return fit, nil
}

// fitRotations fits the rotary-plane rotations (key head and matched query
// heads) and the value/output rotation (value head and matched output
// columns) of group a to group b for the query match within.
func fitRotations(lay *Layout, c *attnCross, a, b int, within []int) (groupFit, error) {
	hd, g, half := lay.HeadDim, lay.group(), lay.HeadDim/2
	qk := block(c.k, c.nkv, hd, b, a)
	vo := block(c.v, c.nkv, hd, b, a)
	for x, y := range within {
		for i, v := range block(c.q, c.nq, hd, b*g+y, a*g+x) {
			qk[i] += v
		}
		for i, v := range block(c.o, c.nq, hd, b*g+y, a*g+x) {
			vo[i] += v
		}
	}
	f := groupFit{within: within, planes: make([]float64, hd)}
	for i := range half {
		m00, m01, m10, m11 := plane(qk, hd, i)
		cs, sn, v := rotation2(m00, m01, m10, m11)
		f.planes[2*i], f.planes[2*i+1] = cs, sn
		f.value += v
	}
	r, v, err := procrustes(vo, hd)
	if err != nil {
		return groupFit{}, err
	}
	f.r = r
	f.value += v
	return f, nil
}

// plane returns the 2×2 restriction of the hd×hd block m to rotary plane i
// (dims i and i+hd/2).
func plane(m []float64, hd, i int) (m00, m01, m10, m11 float64) {
	j := i + hd/2
	return m[i*hd+i], m[i*hd+j], m[j*hd+i], m[j*hd+j]
}

// planesInvariant returns Σᵢ max over plane rotations of the block m.
func planesInvariant(m []float64, hd int) float64 {
	var s float64
	for i := range hd / 2 {
		_, _, v := rotation2(plane(m, hd, i))
		s += v
	}
	return s
}

// planesScore returns Σᵢ tr(Qᵢᵀ·mᵢ) for the plane rotations cs.
func planesScore(m []float64, hd int, cs []float64) float64 {
	var s float64
	for i := range hd / 2 {
		m00, m01, m10, m11 := plane(m, hd, i)
		s += cs[2*i]*(m00+m11) + cs[2*i+1]*(m10-m01)
	}
	return s
}

// traceRtM returns tr(Rᵀ·M) for two square matrices of the same size.
func traceRtM(r, m []float64) float64 {
	var s float64
	for i, v := range r {
		s += v * m[i]
	}
	return s
}
