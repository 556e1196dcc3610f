package transformer

import (
	"math"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// attnBlock is the number of query rows whose scores are formed at once:
// large enough for efficient products, small enough that the causal blocks
// waste little work above the diagonal and the score block stays in cache.
const attnBlock = 64

// attnGeom describes one attention call. Queries, keys and values sit in one
// buffer of B·T rows with row stride ld: query head h at column h·hd, key and
// value head j at (nh + j)·hd and (nh + nkv + j)·hd. The output has row
// stride ldo with head h at column h·hd.
type attnGeom struct {
	B, T        int
	nh, nkv, hd int
	ld, ldo     int
	causal      bool
	scale       float32
}

func (g *attnGeom) rep() int { return g.nh / g.nkv }

// offsets returns the buffer offsets of query head h of sequence b, of its
// key and value heads, and of its output.
func (g *attnGeom) offsets(b, h int) (q, k, v, o int) {
	kv := h / g.rep()
	row := b * g.T * g.ld
	return row + h*g.hd, row + (g.nh+kv)*g.hd, row + (g.nh+g.nkv+kv)*g.hd, b*g.T*g.ldo + h*g.hd
}

// keys returns how many keys the query block ending at row i1 sees.
func (g *attnGeom) keys(i1 int) int {
	if g.causal {
		return i1
	}
	return g.T
}

// attentionForward computes softmax(scale·QKᵀ + mask)·V for every sequence
// and query head, writing the heads into out. When lse is not nil it stores
// the log-sum-exp of each score row, as [B, nh, T], for the backward pass.
// Work is spread over workers goroutines, one (sequence, head) at a time.
func attentionForward(g attnGeom, workers int, qkv, out, lse []float32) {
	one := kernels.Options{Threads: 1}
	bq := min(attnBlock, g.T)
	scratch := make([][]float32, workers)
	forTasks(workers, g.B*g.nh, func(w, task int) {
		if scratch[w] == nil {
			scratch[w] = make([]float32, bq*g.T+bq)
		}
		s, inv := scratch[w][:bq*g.T], scratch[w][bq*g.T:]
		b, h := task/g.nh, task%g.nh
		qo, ko, vo, oo := g.offsets(b, h)
		for i0 := 0; i0 < g.T; i0 += bq {
			i1 := min(i0+bq, g.T)
			m, kend := i1-i0, g.keys(i1)
			one.Sgemm(false, true, m, kend, g.hd, g.scale, qkv[qo+i0*g.ld:], g.ld, qkv[ko:], g.ld, 0, s, kend)
			for r := range m {
				i := i0 + r
				row := s[r*kend : r*kend+kend]
				valid := kend
				if g.causal {
					valid = i + 1
				}
				mx := maxOf(row[:valid])
				sum := expSubSum(row[:valid], mx)
				clear(row[valid:])
				inv[r] = 1 / sum
				if lse != nil {
					lse[(b*g.nh+h)*g.T+i] = mx + float32(math.Log(float64(sum)))
				}
			}
			one.Sgemm(false, false, m, g.hd, kend, 1, s, kend, qkv[vo:], g.ld, 0, out[oo+i0*g.ldo:], g.ldo)
			for r := range m {
				o := out[oo+(i0+r)*g.ldo : oo+(i0+r)*g.ldo+g.hd]
				for d := range o {
					o[d] *= inv[r]
				}
			}
		}
	})
}

// attentionBackward propagates dout (laid out like out) through the
// attention whose inputs are qkv, output out and row log-sum-exp lse, and
// writes the gradients with respect to queries, keys and values into dqkv
// (laid out like qkv). Probabilities are recomputed block by block from lse.
// Work is spread over (sequence, key/value head) pairs, so that the query
// heads sharing a key/value head accumulate into it without contention.
func attentionBackward(g attnGeom, workers int, qkv, out, lse, dout, dqkv []float32) {
	one := kernels.Options{Threads: 1}
	bq := min(attnBlock, g.T)
	rep := g.rep()
	scratch := make([][]float32, workers)
	forTasks(workers, g.B*g.nkv, func(w, task int) {
		if scratch[w] == nil {
			scratch[w] = make([]float32, 2*bq*g.T+g.T)
		}
		p, dp, dsum := scratch[w][:bq*g.T], scratch[w][bq*g.T:2*bq*g.T], scratch[w][2*bq*g.T:]
		b, kv := task/g.nkv, task%g.nkv
		_, ko, vo, _ := g.offsets(b, kv*rep)
		for t := range g.T {
			clear(dqkv[ko+t*g.ld : ko+t*g.ld+g.hd])
			clear(dqkv[vo+t*g.ld : vo+t*g.ld+g.hd])
		}
		for h := kv * rep; h < (kv+1)*rep; h++ {
			qo, _, _, oo := g.offsets(b, h)
			for i := range g.T {
				o := out[oo+i*g.ldo : oo+i*g.ldo+g.hd]
				do := dout[oo+i*g.ldo : oo+i*g.ldo+g.hd]
				var d float32
				for j, v := range o {
					d += v * do[j]
				}
				dsum[i] = d
			}
			lrow := lse[(b*g.nh+h)*g.T:]
			for i0 := 0; i0 < g.T; i0 += bq {
				i1 := min(i0+bq, g.T)
				m, kend := i1-i0, g.keys(i1)
				pb, dpb := p[:m*kend], dp[:m*kend]
				one.Sgemm(false, true, m, kend, g.hd, g.scale, qkv[qo+i0*g.ld:], g.ld, qkv[ko:], g.ld, 0, pb, kend)
				one.Sgemm(false, true, m, kend, g.hd, 1, dout[oo+i0*g.ldo:], g.ldo, qkv[vo:], g.ld, 0, dpb, kend)
				for r := range m {
					i := i0 + r
					prow := pb[r*kend : r*kend+kend]
					drow := dpb[r*kend : r*kend+kend]
					valid := kend
					if g.causal {
						valid = i + 1
					}
					softmaxGrad(prow[:valid], drow[:valid], lrow[i], dsum[i])
					clear(prow[valid:])
					clear(drow[valid:])
				}
				one.Sgemm(false, false, m, g.hd, kend, g.scale, dpb, kend, qkv[ko:], g.ld, 0, dqkv[qo+i0*g.ld:], g.ld)
				one.Sgemm(true, false, kend, g.hd, m, g.scale, dpb, kend, qkv[qo+i0*g.ld:], g.ld, 1, dqkv[ko:], g.ld)
				one.Sgemm(true, false, kend, g.hd, m, 1, pb, kend, dout[oo+i0*g.ldo:], g.ldo, 1, dqkv[vo:], g.ld)
			}
		}
	})
}
