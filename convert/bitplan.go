package convert

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// MinTargetBits is the least bit budget a caller may ask for; whether a
// checkpoint reaches it depends on its 1-D tensors, which stay F32.
const MinTargetBits = 1.0

// DenseSchemes is the menu of dense storage a bit budget chooses from:
// int8 with one scale per row, and int4, int3 and int2 with groups of 32,
// 64 and 128 values (full-range codes, F16 scales).
var DenseSchemes = []quant.Scheme{
	{Bits: 8, Full: true},
	{Bits: 4, GroupSize: 32, Full: true}, {Bits: 4, GroupSize: 64, Full: true}, {Bits: 4, GroupSize: 128, Full: true},
	{Bits: 3, GroupSize: 32, Full: true}, {Bits: 3, GroupSize: 64, Full: true}, {Bits: 3, GroupSize: 128, Full: true},
	{Bits: 2, GroupSize: 32, Full: true}, {Bits: 2, GroupSize: 64, Full: true}, {Bits: 2, GroupSize: 128, Full: true},
}

// FactorSchemes is the menu of storage for the factors of a low-rank
// option: int8 per row and int4 in groups of 32.
var FactorSchemes = []quant.Scheme{{Bits: 8, Full: true}, {Bits: 4, GroupSize: 32, Full: true}}

// BitOption is one way to store a 2-D tensor under a bit budget: dense in
// Scheme (Rank 0), or as the rank-Rank factors B·A of the tensor (no base),
// both factors in Scheme.
type BitOption struct {
	Rank   int
	Scheme quant.Scheme
	// Bits is what the option stores, codes and scales.
	Bits int64
	// Loss is the estimated relative error ‖(W − Ŵ)·L‖²_F / ‖W·L‖²_F, L·Lᵀ
	// the Gram matrix of the layer's inputs (L = I without one): the
	// round-to-nearest error of a dense option, computed; for a low-rank
	// option the whitened truncation error at Rank plus the kept share
	// times the dense error of Scheme on W (an estimate of the factors'
	// rounding error).
	Loss float64
}

// String returns "dense int4/g32/full" or "rank 12 int8/row/full".
func (o BitOption) String() string {
	if o.Rank == 0 {
		return "dense " + o.Scheme.String()
	}
	return fmt.Sprintf("rank %d %s", o.Rank, o.Scheme)
}

// BitPlanner holds the options of every 2-D tensor of a checkpoint (see
// NewBitPlanner), so that bit budgets can be chosen for several targets and
// loss weights without reading the tensors again. Plan does not change it.
type BitPlanner struct {
	st      *vlora.Stack
	tensors []bitTensor
	// fixed is the bits of the 1-D tensors, stored F32; original the
	// checkpoint's parameter count.
	fixed, original int64
}

// bitTensor is one 2-D tensor with the lower convex hull of its options
// in (bits, loss), cheapest first.
type bitTensor struct {
	name    string
	layer   int
	suffix  string
	stack   bool
	hull    []BitOption
	options int
}

// NewBitPlanner reads the checkpoint in modelDir and computes, for every
// 2-D tensor, the bits and estimated loss of each option of the menu:
// DenseSchemes, and with lowRank, for layer tensors, low rank with no base
// at every rank whose factors are smaller than the tensor, in each of
// FactorSchemes. Low rank is not in the default menu: its estimated loss
// ranks it too well (on tinystories260K at 3.5 bits, rounded to nearest,
// the plan with it measured KL 0.646 and the plan without it 0.578;
// docs/quality.md).
// Losses of layer tensors with a Gram matrix in opt.Grams are whitened;
// the others (embeddings, head) are plain. 1-D tensors are stored F32.
// opt.Align is not supported.
func NewBitPlanner(ctx context.Context, modelDir string, opt Options, lowRank bool) (*BitPlanner, error) {
	if opt.Align {
		return nil, fmt.Errorf("%w: a bit budget does not align layers", formats.ErrInvalid)
	}
	ck, st, err := openSource(modelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	bp := &BitPlanner{st: st}
	names := slices.Clone(ck.Names())
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ti, _ := ck.Info(n)
		size := int64(ti.NumElements())
		bp.original += size
		if len(ti.Shape) < 2 {
			bp.fixed += 32 * size
			continue
		}
		t := bitTensor{name: n}
		t.layer, t.suffix, t.stack = st.Split(n)
		w, err := ck.ReadFloat32(n)
		if err != nil {
			return nil, err
		}
		rows, cols := vlora.Matrix(ti.Shape)
		var wh *svd.Whitener
		if g := opt.Grams[n]; g != nil && t.stack {
			if wh, err = svd.NewWhitener(g, svd.DefaultDamping); err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
		}
		opts, err := tensorOptions(w, rows, cols, wh, t.stack && lowRank)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		t.options = len(opts)
		t.hull = lowerHull(opts)
		bp.tensors = append(bp.tensors, t)
	}
	if len(bp.tensors) == 0 {
		return nil, fmt.Errorf("%s: %w: no 2-D tensors to plan", modelDir, formats.ErrInvalid)
	}
	return bp, nil
}

// tensorOptions returns every option of the menu for the rows×cols tensor
// w (low rank only when lowRank).
func tensorOptions(w []float32, rows, cols int, wh *svd.Whitener, lowRank bool) ([]BitOption, error) {
	w64 := make([]float64, len(w))
	for i, v := range w {
		w64[i] = float64(v)
	}
	wm := mat.NewDense(rows, cols, w64)
	// energy returns ‖X·L‖²_F (‖X‖²_F without a whitener).
	energy := func(x *mat.Dense) float64 {
		if wh != nil {
			var xl mat.Dense
			xl.Mul(x, wh.L)
			x = &xl
		}
		n := mat.Norm(x, 2)
		return n * n
	}
	total := energy(wm)
	if total == 0 {
		total = 1
	}
	var opts []BitOption
	denseLoss := map[quant.Scheme]float64{}
	fq := make([]float32, len(w))
	e := make([]float64, len(w))
	for _, s := range DenseSchemes {
		quant.FakeQuant(fq, w, rows, cols, s)
		for i := range e {
			e[i] = w64[i] - float64(fq[i])
		}
		loss := energy(mat.NewDense(rows, cols, e)) / total
		denseLoss[s] = loss
		opts = append(opts, BitOption{Scheme: s, Bits: s.StorageBits(rows, cols), Loss: loss})
	}
	if !lowRank {
		return opts, nil
	}
	var spec []float64
	if wh != nil {
		var err error
		if spec, err = wh.Spectrum(wm); err != nil {
			return nil, err
		}
	} else {
		var f mat.SVD
		if !f.Factorize(wm, mat.SVDNone) {
			return nil, fmt.Errorf("SVD did not converge")
		}
		spec = f.Values(nil)
	}
	// tail[r] is the energy past the first r singular values.
	tail := make([]float64, len(spec)+1)
	for i := len(spec) - 1; i >= 0; i-- {
		tail[i] = tail[i+1] + spec[i]*spec[i]
	}
	for r := 1; r < len(spec) && svd.DenseIsSmaller(rows, cols, r) == false; r++ {
		trunc := min(tail[r]/total, 1)
		for _, s := range FactorSchemes {
			q, ok := denseLoss[s]
			if !ok {
				continue
			}
			opts = append(opts, BitOption{Rank: r, Scheme: s,
				Bits: s.StorageBits(rows, r) + s.StorageBits(r, cols), Loss: trunc + (1-trunc)*q})
		}
	}
	return opts, nil
}

// lowerHull returns the options on the lower convex hull of (Bits, Loss),
// by increasing bits and decreasing loss: the options a Lagrangian
// allocation can choose.
func lowerHull(opts []BitOption) []BitOption {
	sorted := slices.Clone(opts)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Bits != sorted[j].Bits {
			return sorted[i].Bits < sorted[j].Bits
		}
		return sorted[i].Loss < sorted[j].Loss
	})
	// Drop dominated options: more bits for no less loss.
	var front []BitOption
	for _, o := range sorted {
		if len(front) > 0 && (o.Loss >= front[len(front)-1].Loss || o.Bits == front[len(front)-1].Bits) {
			continue
		}
		front = append(front, o)
	}
	var hull []BitOption
	for _, o := range front {
		for len(hull) >= 2 {
			a, b := hull[len(hull)-2], hull[len(hull)-1]
			// b is above the chord a–o: not on the lower hull.
			cross := float64(b.Bits-a.Bits)*(o.Loss-a.Loss) - (b.Loss-a.Loss)*float64(o.Bits-a.Bits)
			if cross > 0 {
				break
			}
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, o)
	}
	return hull
}

// BitPlan is a bit budget spent on a checkpoint: one option per 2-D
// tensor, keyed by original name.
type BitPlan struct {
	Choices map[string]BitOption
	// Bits is what the file stores (the 1-D tensors at F32 included), as
	// vlora.Manifest.Storage counts it; Original is the checkpoint's
	// parameter count.
	Bits, Original int64
	// Loss is the summed weighted estimated loss of the choices.
	Loss float64
	st   *vlora.Stack
}

// BitsPerWeight returns Bits per original weight.
func (p *BitPlan) BitsPerWeight() float64 { return float64(p.Bits) / float64(p.Original) }

// Ranks returns the Options.Ranks of the plan: each layer tensor's rank,
// or DenseIncrement. The plan stores no base (Options.Base vlora.BaseZero).
func (p *BitPlan) Ranks() map[string]int {
	out := map[string]int{}
	for name, c := range p.Choices {
		if _, _, in := p.st.Split(name); !in {
			continue
		}
		if c.Rank == 0 {
			out[name] = DenseIncrement
		} else {
			out[name] = c.Rank
		}
	}
	return out
}

// Quant returns the storage of the plan: the scheme of every stored 2-D
// tensor, by stored name.
func (p *BitPlan) Quant() vlora.QuantPlan {
	qp := vlora.QuantPlan{Tensors: map[string]quant.Scheme{}}
	for name, c := range p.Choices {
		l, s, in := p.st.Split(name)
		switch {
		case !in:
			qp.Tensors[name] = c.Scheme
		case c.Rank == 0:
			qp.Tensors[vlora.DeltaName(l, s)] = c.Scheme
		default:
			qp.Tensors[vlora.LoraAName(l, s)] = c.Scheme
			qp.Tensors[vlora.LoraBName(l, s)] = c.Scheme
		}
	}
	return qp
}

// Plan chooses one option per tensor so that the file stores at most
// target bits per original weight and the summed loss, each tensor's
// weighted by weights[name] (positive and finite; absent names weigh 1),
// is as small as a Lagrangian allocation makes it: every tensor takes the
// point of its convex hull that minimises weight·loss + λ·bits, with the
// smallest λ that meets the budget found by bisection, and the bits left
// are spent greedily on the steps of best loss per bit.
func (bp *BitPlanner) Plan(target float64, weights map[string]float64) (*BitPlan, error) {
	if !(target >= MinTargetBits && target <= 32) {
		return nil, fmt.Errorf("%w: bit target %v must be in [%v, 32]", formats.ErrInvalid, target, MinTargetBits)
	}
	w := make([]float64, len(bp.tensors))
	for i, t := range bp.tensors {
		w[i] = 1
		if v, ok := weights[t.name]; ok {
			if !(v > 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: %w: loss weight %v must be positive and finite", t.name, formats.ErrInvalid, v)
			}
			w[i] = v
		}
	}
	limit := int64(math.Floor(target*float64(bp.original))) - bp.fixed
	pick := func(lambda float64, at []int) int64 {
		var bits int64
		for i, t := range bp.tensors {
			best, bv := 0, math.Inf(1)
			for j, o := range t.hull {
				if v := w[i]*o.Loss + lambda*float64(o.Bits); v < bv {
					best, bv = j, v
				}
			}
			at[i] = best
			bits += t.hull[best].Bits
		}
		return bits
	}
	at := make([]int, len(bp.tensors))
	var least int64
	for _, t := range bp.tensors {
		least += t.hull[0].Bits
	}
	if least > limit {
		return nil, fmt.Errorf("%w: bit target %v is below the least this menu stores, %.3f bits per weight", formats.ErrInvalid, target, float64(least+bp.fixed)/float64(bp.original))
	}
	// λ in [lo, hi]: hi meets the budget. Bisection in log space.
	lo, hi := 1e-30, 1.0
	for pick(hi, at) > limit {
		hi *= 16
	}
	for range 200 {
		mid := math.Sqrt(lo * hi)
		if pick(mid, at) > limit {
			lo = mid
		} else {
			hi = mid
		}
		if hi/lo < 1+1e-9 {
			break
		}
	}
	bits := pick(hi, at)
	// Spend what is left on the hull steps of most loss saved per bit.
	for {
		bi, best := -1, 0.0
		for i, t := range bp.tensors {
			if at[i]+1 >= len(t.hull) {
				continue
			}
			cur, next := t.hull[at[i]], t.hull[at[i]+1]
			db := next.Bits - cur.Bits
			if bits+db > limit {
				continue
			}
			if gain := w[i] * (cur.Loss - next.Loss) / float64(db); gain > best {
				bi, best = i, gain
			}
		}
		if bi < 0 {
			break
		}
		t := bp.tensors[bi]
		bits += t.hull[at[bi]+1].Bits - t.hull[at[bi]].Bits
		at[bi]++
	}
	plan := &BitPlan{Choices: map[string]BitOption{}, Bits: bits + bp.fixed, Original: bp.original, st: bp.st}
	for i, t := range bp.tensors {
		o := t.hull[at[i]]
		plan.Choices[t.name] = o
		plan.Loss += w[i] * o.Loss
	}
	return plan, nil
}

// Tensors returns the names of the planned 2-D tensors, sorted.
func (bp *BitPlanner) Tensors() []string {
	out := make([]string, len(bp.tensors))
	for i, t := range bp.tensors {
		out[i] = t.name
	}
	return out
}
