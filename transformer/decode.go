package transformer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// ErrNotCausal reports a model that cannot be decoded incrementally: an
// encoder, an image model, or a model with bidirectional attention.
// NewDecoder's error wraps it.
var ErrNotCausal = errors.New("not a causal language model")

// Decoder runs a causal language model one position at a time over a batch
// of sequences, keeping every block's keys (after the rotary embedding) and
// values of the positions seen so far, so that a step costs the work of one
// token per sequence plus attention over the cached positions, instead of a
// forward pass over the whole prefix.
//
// Step at position t performs the float32 arithmetic of Forward at position
// t of the same sequences (see minRows), so it gives the same logits; on a
// model of stored operators (LoadOperators) the products group their sums
// differently from Forward's, and the logits agree to rounding. The
// cache reflects the parameters
// in use when each position was decoded: parameters changed between steps
// call for a Reset. A Decoder is not safe for concurrent use; several
// decoders may share a Model.
type Decoder struct {
	m             *Model
	batch, maxLen int
	// rows is the batch of the passes, at least minRows; rows beyond batch
	// repeat the first sequence.
	rows  int
	ids   []int
	ropes map[[2]float64]*ropeTable
	cache kvCache
	ar    arena
}

// minRows is the fewest rows a product of a decoding step has. Sgemm
// evaluates a product with a single row on a matrix-vector path that groups
// its sums differently from the blocked path every product of Forward
// takes; decoding one sequence, or one query per key/value head, would then
// drift from Forward by rounding (up to 1.2e-5 relative in stories260K's
// logits). With two or more rows a step performs Forward's arithmetic for
// its position. A padding row adds its attention over the cache; the
// products with the weights cost about the same, the blocked kernels
// computing whole register tiles of rows anyway.
const minRows = 2

// maxCacheValues bounds the size of a decoder's cache (64 GiB of float32),
// so that an absurd batch or length is an error rather than a failed
// allocation.
const maxCacheValues = 1 << 34

// kvCache holds, for every block, the keys and values of the first pos
// positions of batch sequences. Keys are stored transposed, as [batch, kv
// heads, head dim, maxLen], so that the score product reads them in place,
// as attentionForward reads its transposed keys; values are stored as
// [batch, kv heads, maxLen, head dim].
//
// An F16 cache (DecoderOptions.F16Cache) holds both as IEEE half-precision
// bit patterns, two little-endian bytes each, laid out as [batch, kv heads,
// maxLen, head dim] in k16 and v16: the score product reads the keys as a
// stored F16 matrix (kernels.MulStored), and the values are decoded to
// float32 for the weighted sum.
type kvCache struct {
	batch, maxLen, pos int
	k, v               [][]float32
	k16, v16           [][]byte
	// scratch holds each worker's scores, normalisers, stacked queries
	// and outputs.
	scratch [][]float32
}

// DecoderOptions configures a Decoder.
type DecoderOptions struct {
	// F16Cache stores the cached keys and values in half precision: half
	// the memory of the float32 cache, each value rounded to 11
	// significant bits, so that the logits differ from the float32
	// cache's by that rounding.
	F16Cache bool
}

// NewDecoder returns a Decoder for batch sequences of at most maxLen tokens.
// The model must be a causal language model (Llama family, GPT-2); other
// models give an error wrapping ErrNotCausal. A non-positive batch or
// maxLen, or a maxLen beyond the learned position table or the sliding
// window, gives an error wrapping formats.ErrInvalid.
//
// The cache takes 2·max(batch, 2)·maxLen·kvHeads·headDim float32 values per
// block (2·batch·… on a model of stored operators, LoadOperators); a cache beyond maxCacheValues in all is refused (formats.ErrInvalid).
func (m *Model) NewDecoder(batch, maxLen int) (*Decoder, error) {
	return m.NewDecoderWith(batch, maxLen, DecoderOptions{})
}

// NewDecoderWith is NewDecoder with options; an F16 cache takes half the
// bytes of the float32 one.
func (m *Model) NewDecoderWith(batch, maxLen int, opt DecoderOptions) (*Decoder, error) {
	n := &m.net
	if n.headKind != HeadLM || n.patch != nil {
		return nil, fmt.Errorf("transformer: %s: %w", m.archName(), ErrNotCausal)
	}
	for i := range n.layers {
		if !n.layers[i].attn.causal {
			return nil, fmt.Errorf("transformer: %s: layer %d has bidirectional attention: %w", m.archName(), i, ErrNotCausal)
		}
	}
	if batch <= 0 || maxLen <= 0 {
		return nil, fmt.Errorf("transformer: %w: decoder batch %d and length %d must be positive", formats.ErrInvalid, batch, maxLen)
	}
	if n.positions != nil && maxLen > n.maxPos {
		return nil, fmt.Errorf("transformer: %w: decoder length %d exceeds %d learned positions", formats.ErrInvalid, maxLen, n.maxPos)
	}
	rows := max(batch, minRows)
	if m.operators {
		// Products on stored operators group their sums their own way
		// whatever the row count; a padding row would only cost work.
		rows = batch
	}
	var total float64
	for i := range n.layers {
		a := &n.layers[i].attn
		total += 2 * float64(rows) * float64(maxLen) * float64(a.nkv*a.hd)
	}
	if total > maxCacheValues {
		return nil, fmt.Errorf("transformer: %w: a cache for %d sequences of %d tokens needs %.3g values, more than %g", formats.ErrInvalid, batch, maxLen, total, float64(maxCacheValues))
	}
	d := &Decoder{m: m, batch: batch, maxLen: maxLen, rows: rows, ids: make([]int, rows),
		ropes: map[[2]float64]*ropeTable{}, cache: kvCache{batch: rows, maxLen: maxLen}}
	for i := range n.layers {
		a := &n.layers[i].attn
		if a.window > 0 && maxLen > a.window {
			return nil, fmt.Errorf("transformer: %w: decoder length %d exceeds the sliding window %d", formats.ErrInvalid, maxLen, a.window)
		}
		size := rows * a.nkv * maxLen * a.hd
		if opt.F16Cache {
			d.cache.k16 = append(d.cache.k16, make([]byte, 2*size))
			d.cache.v16 = append(d.cache.v16, make([]byte, 2*size))
		} else {
			d.cache.k = append(d.cache.k, make([]float32, size))
			d.cache.v = append(d.cache.v, make([]float32, size))
		}
		if k := [2]float64{float64(a.hd), a.theta}; a.theta != 0 && d.ropes[k] == nil {
			d.ropes[k] = newRopeTable(maxLen, a.hd, a.theta)
		}
	}
	return d, nil
}

// archName names the model's architecture for messages.
func (m *Model) archName() string {
	if m.Spec != nil && m.Spec.Arch != "" {
		return m.Spec.Arch
	}
	return "model"
}

// Batch returns the number of sequences the decoder runs.
func (d *Decoder) Batch() int { return d.batch }

// MaxLen returns the number of positions the decoder can hold.
func (d *Decoder) MaxLen() int { return d.maxLen }

// Len returns the number of positions decoded since the last Reset.
func (d *Decoder) Len() int { return d.cache.pos }

// Reset empties the cache; the next Step decodes position 0.
func (d *Decoder) Reset() { d.cache.pos = 0 }

// Step appends one token to each sequence, ids[b] to sequence b, and returns
// the logits for the next token, [batch, vocab] row-major, in a new slice
// owned by the caller. It gives an error wrapping formats.ErrInvalid when ids has not
// batch entries, an id is outside the vocabulary, or the decoder already
// holds maxLen positions; the decoder is then unchanged.
func (d *Decoder) Step(ids []int) ([]float32, error) {
	return d.Prefill(ids, 1)
}

// Prefill appends t tokens to each sequence at once — ids holds batch rows
// of t tokens, row-major — and returns the logits for the token that
// follows each sequence's last one, [batch, vocab] row-major, in a new
// slice owned by the caller. The pass runs all batch·t positions together
// (a prompt's products go through the matrix-multiply path), each position
// attending to the cached ones and to those before it; the cache then holds
// t more positions. Errors are those of Step, and a t that would take the
// decoder past maxLen; the decoder is then unchanged.
func (d *Decoder) Prefill(ids []int, t int) ([]float32, error) {
	if t < 1 || d.cache.pos+t > d.maxLen {
		return nil, fmt.Errorf("transformer: %w: %d more positions for a decoder holding %d of its maximum of %d", formats.ErrInvalid, t, d.cache.pos, d.maxLen)
	}
	in := &Input{Batch: d.batch, Seq: t, IDs: ids}
	if _, _, err := d.m.positions(in); err != nil {
		return nil, err
	}
	if cap(d.ids) < d.rows*t {
		d.ids = make([]int, d.rows*t)
	}
	all := d.ids[:d.rows*t]
	copy(all, ids)
	for i := d.batch; i < d.rows; i++ {
		copy(all[i*t:(i+1)*t], ids[:t])
	}
	d.ar.reset()
	p := d.m.newPass(d.rows, t, false, &d.ar)
	p.ropes, p.start, p.cache = d.ropes, d.cache.pos, &d.cache
	if err := p.run(&Input{Batch: d.rows, Seq: t, IDs: all}); err != nil {
		return nil, err
	}
	d.cache.pos += t
	V := d.m.net.lm.out
	if t == 1 {
		n := d.batch * V
		return p.logits[:n:n], nil
	}
	out := make([]float32, d.batch*V)
	for b := range d.batch {
		copy(out[b*V:(b+1)*V], p.logits[(b*t+t-1)*V:(b*t+t)*V])
	}
	return out, nil
}

// attend stores the keys and values of the T new positions of every
// sequence (rows b·T … b·T+T−1 of qkv, laid out as in a pass) in block li's
// cache and writes the attention of their queries over the cached
// positions up to each one into out (row stride nh·hd). Each (sequence,
// key/value head) pair is one task, which takes its new positions in
// order; the rep query heads of a position are consecutive in the qkv row
// and form one product with the cached keys, as the stacked heads of
// attentionForward do. A lone query (rep = 1) is stacked twice, for the
// reason given at minRows.
func (c *kvCache) attend(li int, a *attention, workers, T int, qkv, out []float32) {
	one := kernels.Options{Threads: 1}
	rep, hd := a.nh/a.nkv, a.hd
	m := max(rep, minRows)
	W, ldo, lds := a.width(), a.nh*a.hd, roundUp8(c.pos+T)
	if c.k16 != nil {
		c.attendF16(li, a, workers, T, qkv, out)
		return
	}
	kc, vc := c.k[li], c.v[li]
	for len(c.scratch) < workers {
		c.scratch = append(c.scratch, nil)
	}
	forTasks(workers, c.batch*a.nkv, func(w, task int) {
		need := m*lds + m + 2*m*hd
		if len(c.scratch[w]) < need {
			c.scratch[w] = make([]float32, m*roundUp8(c.maxLen)+m+2*m*hd)
		}
		buf := c.scratch[w]
		s, buf := buf[:m*lds], buf[m*lds:]
		inv, buf := buf[:m], buf[m:]
		q, o := buf[:m*hd], buf[m*hd:2*m*hd]
		b, kv := task/a.nkv, task%a.nkv
		kT, v := kc[task*hd*c.maxLen:], vc[task*hd*c.maxLen:]
		ko, vo := (a.nh+kv)*hd, (a.nh+a.nkv+kv)*hd
		h0 := kv * rep
		for t := range T {
			pos := c.pos + t
			L := pos + 1
			row := qkv[(b*T+t)*W : (b*T+t+1)*W]
			for d, k := range row[ko : ko+hd] {
				kT[d*c.maxLen+pos] = k
			}
			copy(v[pos*hd:L*hd], row[vo:vo+hd])
			for r := range m {
				h := h0 + min(r, rep-1)
				copy(q[r*hd:(r+1)*hd], row[h*hd:(h+1)*hd])
			}
			one.Sgemm(false, false, m, L, hd, a.scale, q, hd, kT, c.maxLen, 0, s, lds)
			weighValues(one, s, lds, L, m, rep, hd, v, inv, o, out[(b*T+t)*ldo+h0*hd:(b*T+t)*ldo+(h0+rep)*hd])
		}
	})
}

// weighValues turns the m rows of attention scores s (row stride lds, L
// keys) into softmax weights, applies them to the L value rows v (hd
// wide), and writes the first rep rows of the result to dst; inv (m) and o
// (m·hd) are scratch.
func weighValues(one kernels.Options, s []float32, lds, L, m, rep, hd int, v, inv, o, dst []float32) {
	for r := range m {
		_, sum := expScores(s[r*lds:(r+1)*lds], L)
		inv[r] = 1 / sum
	}
	one.Sgemm(false, false, m, hd, L, 1, s, lds, v, hd, 0, o, hd)
	for r := range rep {
		f := inv[r]
		for d, x := range o[r*hd : (r+1)*hd] {
			dst[r*hd+d] = x * f
		}
	}
}

// attendF16 is attend on the half-precision cache: the new keys and values
// are rounded to F16 (formats.Float32ToF16) as they are stored, the scores
// are the product of the queries with the stored F16 keys
// (kernels.MulStored), and the values are decoded to float32 for the
// weighted sum.
func (c *kvCache) attendF16(li int, a *attention, workers, T int, qkv, out []float32) {
	one := kernels.Options{Threads: 1}
	rep, hd := a.nh/a.nkv, a.hd
	m := max(rep, minRows)
	W, ldo, lds := a.width(), a.nh*a.hd, roundUp8(c.pos+T)
	kc, vc := c.k16[li], c.v16[li]
	for len(c.scratch) < workers {
		c.scratch = append(c.scratch, nil)
	}
	forTasks(workers, c.batch*a.nkv, func(w, task int) {
		need := m*roundUp8(c.maxLen) + m + 2*m*hd + c.maxLen*hd
		if len(c.scratch[w]) < need {
			c.scratch[w] = make([]float32, need)
		}
		buf := c.scratch[w]
		s, buf := buf[:m*lds], buf[m*lds:]
		inv, buf := buf[:m], buf[m:]
		q, o, vf := buf[:m*hd], buf[m*hd:2*m*hd], buf[2*m*hd:]
		b, kv := task/a.nkv, task%a.nkv
		k16, v16 := kc[2*task*hd*c.maxLen:], vc[2*task*hd*c.maxLen:]
		ko, vo := (a.nh+kv)*hd, (a.nh+a.nkv+kv)*hd
		h0 := kv * rep
		for t := range T {
			pos := c.pos + t
			L := pos + 1
			row := qkv[(b*T+t)*W : (b*T+t+1)*W]
			for d := range hd {
				binary.LittleEndian.PutUint16(k16[2*(pos*hd+d):], formats.Float32ToF16(row[ko+d]))
				binary.LittleEndian.PutUint16(v16[2*(pos*hd+d):], formats.Float32ToF16(row[vo+d]))
			}
			for r := range m {
				h := h0 + min(r, rep-1)
				for d, x := range row[h*hd : (h+1)*hd] {
					q[r*hd+d] = x * a.scale
				}
			}
			keys := kernels.Stored{Format: kernels.F16, Rows: L, Cols: hd, Raw: k16[:2*L*hd]}
			one.MulStored(m, q, hd, &keys, s, lds, 0)
			vals := kernels.Stored{Format: kernels.F16, Rows: L, Cols: hd, Raw: v16[:2*L*hd]}
			vals.DecodeRows(0, L, vf[:L*hd])
			weighValues(one, s, lds, L, m, rep, hd, vf, inv, o, out[(b*T+t)*ldo+h0*hd:(b*T+t)*ldo+(h0+rep)*hd])
		}
	})
}
