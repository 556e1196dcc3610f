package transformer

import (
	"math"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// attnBlock is the number of query positions whose scores are formed at
// once. The stacked rows (attnBlock times the query heads per key/value
// head) are a multiple of the GEMM register tiles (12 rows with AVX-512, 6
// with AVX2), the causal blocks waste little work above the diagonal (18% at
// T = 256), and a score block stays in L2.
const attnBlock = 48

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
	// block is the number of query positions per score block (attnBlock
	// unless a test asks for another).
	block int
}

func (g *attnGeom) rep() int { return g.nh / g.nkv }

// offsets returns the buffer offsets of query head h of sequence b, of its
// key and value heads, and of its output.
func (g *attnGeom) offsets(b, h int) (q, k, v, o int) {
	kv := h / g.rep()
	row := b * g.T * g.ld
	return row + h*g.hd, row + (g.nh+kv)*g.hd, row + (g.nh+g.nkv+kv)*g.hd, b*g.T*g.ldo + h*g.hd
}

// keys returns how many keys the query block ending at position i1 sees.
func (g *attnGeom) keys(i1 int) int {
	if g.causal {
		return i1
	}
	return g.T
}

// valid returns how many keys query position i sees.
func (g *attnGeom) valid(i int) int {
	if g.causal {
		return i + 1
	}
	return g.T
}

// The attention passes work on (sequence, key/value head) pairs. The rep
// query heads sharing a key/value head are stacked: for a block of m query
// positions i0..i0+m−1, stacked row r·m + (i − i0) holds head kv·rep + r at
// position i, so that one product serves all of them. Keys (and, in the
// backward pass, values) are transposed once per pair into hd×T, which the
// GEMM reads in place, instead of being packed again for every block.
// Score rows are padded to a multiple of 8 with −∞ so that the exponential
// loops never fall back to scalar code.

// gather copies the rows of a block of stacked heads from src (row stride
// ld, head r at column r·hd from base) into dst [rep·m, hd].
func gather(dst, src []float32, base, ld, hd, rep, i0, m int) {
	for r := range rep {
		for i := range m {
			o := base + (i0+i)*ld + r*hd
			copy(dst[(r*m+i)*hd:(r*m+i+1)*hd], src[o:o+hd])
		}
	}
}

// transpose writes the T×hd head at src[base:] (row stride ld) into dst as
// hd×T, four positions at a time.
func transpose(dst, src []float32, base, ld, hd, T int) {
	t := 0
	for ; t+4 <= T; t += 4 {
		r0 := src[base+t*ld : base+t*ld+hd]
		r1 := src[base+(t+1)*ld : base+(t+1)*ld+hd]
		r2 := src[base+(t+2)*ld : base+(t+2)*ld+hd]
		r3 := src[base+(t+3)*ld : base+(t+3)*ld+hd]
		for d := range r0 {
			o := dst[d*T+t : d*T+t+4]
			o[0], o[1], o[2], o[3] = r0[d], r1[d], r2[d], r3[d]
		}
	}
	for ; t < T; t++ {
		for d := range hd {
			dst[d*T+t] = src[base+t*ld+d]
		}
	}
}

// negInf fills x with −∞, the value of a masked score.
func negInf(x []float32) {
	ninf := float32(math.Inf(-1))
	for i := range x {
		x[i] = ninf
	}
}

// roundUp8 rounds n up to a multiple of 8, the vector width of the
// exponential loops.
func roundUp8(n int) int { return (n + 7) &^ 7 }

// expScores replaces the first valid scores of row by e**(s − max) and
// returns the maximum and the sum of the exponentials. Entries from valid up
// to roundUp8(valid), which row must hold, are set to −∞ first (and so end
// as 0), letting the exponential loop run on whole vectors.
func expScores(row []float32, valid int) (mx, sum float32) {
	vp := roundUp8(valid)
	negInf(row[valid:vp])
	mx = maxOf(row[:vp])
	return mx, expSubSum(row[:vp], mx)
}

// attentionForward computes softmax(scale·QKᵀ + mask)·V for every sequence
// and query head, writing the heads into out. When lse is not nil it stores
// the log-sum-exp of each score row, as [B, nh, T], for the backward pass.
func attentionForward(g attnGeom, workers int, qkv, out, lse []float32) {
	one := kernels.Options{Threads: 1}
	bq := min(g.block, g.T)
	rep, hd, T := g.rep(), g.hd, g.T
	rows, ldMax := rep*bq, roundUp8(T)
	scratch := make([][]float32, workers)
	forTasks(workers, g.B*g.nkv, func(w, task int) {
		if scratch[w] == nil {
			scratch[w] = make([]float32, rows*ldMax+2*rows*hd+rows+hd*T)
		}
		buf := scratch[w]
		s, buf := buf[:rows*ldMax], buf[rows*ldMax:]
		q, buf := buf[:rows*hd], buf[rows*hd:]
		o, buf := buf[:rows*hd], buf[rows*hd:]
		inv, kT := buf[:rows], buf[rows:rows+hd*T]
		b, kv := task/g.nkv, task%g.nkv
		h0 := kv * rep
		qo, ko, vo, oo := g.offsets(b, h0)
		transpose(kT, qkv, ko, g.ld, hd, T)
		for i0 := 0; i0 < T; i0 += bq {
			i1 := min(i0+bq, T)
			m, kend := i1-i0, g.keys(i1)
			n, lds := rep*m, roundUp8(kend)
			gather(q, qkv, qo, g.ld, hd, rep, i0, m)
			one.Sgemm(false, false, n, kend, hd, g.scale, q, hd, kT, T, 0, s, lds)
			for sr := range n {
				i := i0 + sr%m
				row := s[sr*lds : sr*lds+lds]
				valid := g.valid(i)
				mx, sum := expScores(row, valid)
				clear(row[valid:kend])
				inv[sr] = 1 / sum
				if lse != nil {
					lse[(b*g.nh+h0+sr/m)*T+i] = mx + float32(math.Log(float64(sum)))
				}
			}
			one.Sgemm(false, false, n, hd, kend, 1, s, lds, qkv[vo:], g.ld, 0, o, hd)
			for sr := range n {
				r, i := sr/m, i0+sr%m
				dst := out[oo+i*g.ldo+r*hd : oo+i*g.ldo+(r+1)*hd]
				src := o[sr*hd : (sr+1)*hd]
				f := inv[sr]
				for d := range dst {
					dst[d] = src[d] * f
				}
			}
		}
	})
}

// attentionBackward propagates dout (laid out like out) through the
// attention whose inputs are qkv, output out and row log-sum-exp lse, and
// writes the gradients with respect to queries, keys and values into dqkv
// (laid out like qkv). Probabilities are recomputed block by block from lse.
// Each (sequence, key/value head) pair is one task, so the query heads
// sharing a key/value head accumulate into it without contention.
func attentionBackward(g attnGeom, workers int, qkv, out, lse, dout, dqkv []float32) {
	one := kernels.Options{Threads: 1}
	bq := min(g.block, g.T)
	rep, hd, T := g.rep(), g.hd, g.T
	rows, ldMax := rep*bq, roundUp8(T)
	scratch := make([][]float32, workers)
	forTasks(workers, g.B*g.nkv, func(w, task int) {
		if scratch[w] == nil {
			scratch[w] = make([]float32, 2*rows*ldMax+3*rows*hd+rep*T+2*hd*T)
		}
		buf := scratch[w]
		p, buf := buf[:rows*ldMax], buf[rows*ldMax:]
		dp, buf := buf[:rows*ldMax], buf[rows*ldMax:]
		q, buf := buf[:rows*hd], buf[rows*hd:]
		do, buf := buf[:rows*hd], buf[rows*hd:]
		dq, buf := buf[:rows*hd], buf[rows*hd:]
		dsum, buf := buf[:rep*T], buf[rep*T:]
		kT, vT := buf[:hd*T], buf[hd*T:2*hd*T]
		b, kv := task/g.nkv, task%g.nkv
		h0 := kv * rep
		qo, ko, vo, oo := g.offsets(b, h0)
		transpose(kT, qkv, ko, g.ld, hd, T)
		transpose(vT, qkv, vo, g.ld, hd, T)
		for t := range T {
			clear(dqkv[ko+t*g.ld : ko+t*g.ld+hd])
			clear(dqkv[vo+t*g.ld : vo+t*g.ld+hd])
		}
		// dsum[r·T + i] = Σ_d dout·out for head h0+r at position i.
		for r := range rep {
			for i := range T {
				o := oo + i*g.ldo + r*hd
				dsum[r*T+i] = dot32(out[o:o+hd], dout[o:o+hd])
			}
		}
		for i0 := 0; i0 < T; i0 += bq {
			i1 := min(i0+bq, T)
			m, kend := i1-i0, g.keys(i1)
			n, lds := rep*m, roundUp8(kend)
			gather(q, qkv, qo, g.ld, hd, rep, i0, m)
			gather(do, dout, oo, g.ldo, hd, rep, i0, m)
			one.Sgemm(false, false, n, kend, hd, g.scale, q, hd, kT, T, 0, p, lds)
			one.Sgemm(false, false, n, kend, hd, 1, do, hd, vT, T, 0, dp, lds)
			for sr := range n {
				r, i := sr/m, i0+sr%m
				prow := p[sr*lds : sr*lds+lds]
				drow := dp[sr*lds : sr*lds+lds]
				valid := g.valid(i)
				vp := roundUp8(valid)
				negInf(prow[valid:vp])
				softmaxGrad(prow[:vp], drow[:vp], lse[(b*g.nh+h0+r)*T+i], dsum[r*T+i])
				clear(prow[valid:kend])
				clear(drow[valid:kend])
			}
			one.Sgemm(false, false, n, hd, kend, g.scale, dp, lds, qkv[ko:], g.ld, 0, dq, hd)
			one.Sgemm(true, false, kend, hd, n, g.scale, dp, lds, q, hd, 1, dqkv[ko:], g.ld)
			one.Sgemm(true, false, kend, hd, n, 1, p, lds, do, hd, 1, dqkv[vo:], g.ld)
			for sr := range n {
				r, i := sr/m, i0+sr%m
				o := qo + i*g.ld + r*hd
				copy(dqkv[o:o+hd], dq[sr*hd:(sr+1)*hd])
			}
		}
	})
}

// dot32 returns Σ x[i]·y[i] accumulated in float32.
func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}
