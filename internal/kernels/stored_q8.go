package kernels

import (
	"encoding/binary"
	"math"
	"sync"
)

// The one-row product of a 4-bit matrix on integer dot products: the
// activation row is quantized once per product to int8 with one float32
// scale per group of the matrix (d_g = max|x_j|/127 over the group's
// elements, x_j rounded to the nearest multiple of d_g), and each group's
// Σ (code−8)·q_j is computed exactly in int32 before one multiplication by
// scale_g·d_g. This is the scheme of llama.cpp's Q4_0 × Q8_0 product: it
// reads a quarter of the activation bytes of the float kernels and decodes
// no code to float.
//
// Error against the float product: each activation moves by at most d_g/2,
// so a row's result moves by at most Σ_g |scale_g|·(d_g/2)·Σ_{j in g}
// |code_j−8| (Q8ActivationBound), plus float32 rounding of the per-group
// products and their sum.

// q8Path reports whether a product of n rows with w goes through the
// integer kernel: one row, 4-bit codes in whole groups of a multiple of 32
// inside each row, with the assembly available.
func (w *Stored) q8Path(n int) bool {
	if !storedAsm || n != 1 || w.Format != Quant || w.Bits != 4 {
		return false
	}
	g := w.group()
	return g%32 == 0 && w.Cols%g == 0
}

// quantizeQ8 writes x quantized per group of g elements into xq, in
// 32-element chunk order (of every 32, the 16 of even index, then the 16
// of odd index), each group's scale d_g into xs and −8 times the sum of its
// quantized elements (the offset of the 4-bit codes) into xc.
func quantizeQ8(x []float32, g int, xq []int8, xs []float32, xc []int32) {
	for k := range len(x) / g {
		seg := x[k*g : (k+1)*g]
		var amax float32
		for _, v := range seg {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d > 0 {
			id = 1 / d
		}
		xs[k] = d
		q := xq[k*g : (k+1)*g]
		var sum int32
		for c := 0; c < g; c += 32 {
			src, dst := seg[c:c+32], q[c:c+32]
			for j := range 16 {
				dst[j] = int8(math.RoundToEven(float64(src[2*j] * id)))
				dst[16+j] = int8(math.RoundToEven(float64(src[2*j+1] * id)))
				sum += int32(dst[j]) + int32(dst[16+j])
			}
		}
		xc[k] = -8 * sum
	}
}

// Block order, for groups of 32 on the 512-bit VNNI kernel: the groups
// of a row are taken four at a time (then two, then one at the row's end),
// and a block of b groups keeps the span of its elements with, first, the
// 16 elements of even index of each of its groups (group by group), then
// the 16 of odd index of each. The low nibbles of the block's code bytes
// are then its even codes in that order, and the high nibbles its odd
// codes, so that one shift and two masks unpack 128 codes.

// q8Blocks reports whether the product of one row with w (q8Path) runs on
// the block-order kernel.
func (w *Stored) q8Blocks() bool {
	return storedVNNI && storedAVX512 && w.group() == 32
}

// quantizeQ8Group quantizes the 32 values seg to int8 with the step
// d = max|seg|/127 (0 for a zero group), rounding to the nearest even
// integer, writes those of even index to even and those of odd index to
// odd, and returns d and the sum of the 32 codes.
func quantizeQ8Group(seg []float32, even, odd []int8) (d float32, sum int32) {
	seg, even, odd = seg[:32], even[:16], odd[:16]
	var amax float32
	for _, v := range seg {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d = amax / 127
	if !(d > 0) {
		clear(even)
		clear(odd)
		return 0, 0
	}
	id := 1 / d
	for j := range 16 {
		even[j] = int8(math.RoundToEven(float64(seg[2*j] * id)))
		odd[j] = int8(math.RoundToEven(float64(seg[2*j+1] * id)))
		sum += int32(even[j]) + int32(odd[j])
	}
	return d, sum
}

// quantizeQ8Blocks writes x (whole groups of 32) quantized per group into
// xq in block order, each group's step d_g into the four entries
// xs4[4g … 4g+3], and the offset of its 4-bit codes, −8 times the sum of
// its quantized elements, into xc4[4g] (xc4[4g+1 … 4g+3] = 0): the
// 4-lane layout of q4q8BlocksVNNI512's accumulators.
func quantizeQ8Blocks(x []float32, xq []int8, xs4 []float32, xc4 []int32) {
	groups := len(x) / 32
	for g0 := 0; g0 < groups; {
		b := 4
		for g0+b > groups {
			b /= 2
		}
		base := 32 * g0
		for i := range b {
			k := g0 + i
			even := xq[base+16*i : base+16*i+16]
			odd := xq[base+16*(b+i) : base+16*(b+i)+16]
			d, sum := quantizeQ8Group32(x[32*k:32*k+32], even, odd)
			xs4[4*k], xs4[4*k+1], xs4[4*k+2], xs4[4*k+3] = d, d, d, d
			xc4[4*k], xc4[4*k+1], xc4[4*k+2], xc4[4*k+3] = -8*sum, 0, 0, 0
		}
		g0 += b
	}
}

// q4q8BlocksGo is the portable block-order kernel, the reference of the
// assembly: y[r] = Σ_g scale[r, g]·xs4[4g]·(Σ_j code[r, j]·xq[j] + xc4[4g]).
func q4q8BlocksGo(codes, scales []byte, xq []int8, xs4 []float32, xc4 []int32, rows, groups int, y []float32) {
	for r := range rows {
		var acc float32
		row := codes[r*groups*16:]
		for g0 := 0; g0 < groups; {
			b := 4
			for g0+b > groups {
				b /= 2
			}
			for i := range b {
				k := g0 + i
				sum := xc4[4*k]
				cb := row[16*k : 16*k+16]
				for j, v := range cb {
					sum += int32(v&15)*int32(xq[32*g0+16*i+j]) + int32(v>>4)*int32(xq[32*g0+16*(b+i)+j])
				}
				s := f16ToFloat32(binary.LittleEndian.Uint16(scales[2*(r*groups+k):])) * xs4[4*k]
				acc += float32(sum) * s
			}
			g0 += b
		}
		y[r] = acc
	}
}

// q8Scratch is a pooled activation buffer of the integer kernel.
type q8Scratch struct {
	xq  []int8
	xs  []float32
	xc  []int32
	xs4 []float32
	xc4 []int32
	out []float32
}

var q8Pool sync.Pool

// mulQ4Q8 computes y = x·wᵀ + beta·y for one row x through the integer
// kernel, in bands of rows on up to bands goroutines.
func mulQ4Q8(x []float32, w *Stored, y []float32, beta float32, bands int) {
	s, _ := q8Pool.Get().(*q8Scratch)
	if s == nil {
		s = &q8Scratch{}
	}
	blocks := s.quantize(x, w)
	out := y[:w.Rows]
	if beta != 0 {
		if cap(s.out) < w.Rows {
			s.out = make([]float32, w.Rows)
		}
		out = s.out[:w.Rows]
	}
	inBands(w.Rows, bands, func(r0, r1 int) { s.rows(w, blocks, out, r0, r1) })
	if beta != 0 {
		for r, v := range out {
			y[r] = v + beta*y[r]
		}
	}
	q8Pool.Put(s)
}

// quantize writes the first w.Cols values of x, quantized for products
// with w on the integer kernel, into s, and reports whether they are in
// block order (q8Blocks).
func (s *q8Scratch) quantize(x []float32, w *Stored) bool {
	g := w.group()
	groups := w.Cols / g
	if cap(s.xq) < w.Cols {
		s.xq = make([]int8, w.Cols)
	}
	if cap(s.xs) < groups {
		s.xs, s.xc = make([]float32, groups), make([]int32, groups)
	}
	if w.q8Blocks() {
		if cap(s.xs4) < 4*groups {
			s.xs4, s.xc4 = make([]float32, 4*groups), make([]int32, 4*groups)
		}
		quantizeQ8Blocks(x[:w.Cols], s.xq[:w.Cols], s.xs4[:4*groups], s.xc4[:4*groups])
		return true
	}
	quantizeQ8(x[:w.Cols], g, s.xq[:w.Cols], s.xs[:groups], s.xc[:groups])
	return false
}

// rows computes rows r0 … r1−1 of the product of w with the vector
// quantized into s into out[r0:r1].
func (s *q8Scratch) rows(w *Stored, blocks bool, out []float32, r0, r1 int) {
	if r1 <= r0 {
		return
	}
	g := w.group()
	groups := w.Cols / g
	rowBytes := w.Cols / 2
	codes, scales := w.Raw[r0*rowBytes:r1*rowBytes], w.Scales[2*r0*groups:2*r1*groups]
	xq := s.xq[:w.Cols]
	if blocks {
		q4q8Blocks(codes, scales, xq, s.xs4[:4*groups], s.xc4[:4*groups], r1-r0, groups, out[r0:r1])
		return
	}
	q4q8Rows(codes, scales, xq, s.xs[:groups], s.xc[:groups], r1-r0, groups, g/32, out[r0:r1])
}

// q4q8Rows checks the slices and computes the rows of the integer kernel:
// y[r] = Σ_g scale[r, g]·xs[g]·Σ_{j in g} (code[r, j]−8)·xq[j] for rows
// consecutive rows of groups groups of 32·chunks codes; xc[g] is
// −8·Σ_{j in g} xq[j].
func q4q8Rows(codes, scales []byte, xq []int8, xs []float32, xc []int32, rows, groups, chunks int, y []float32) {
	_ = codes[rows*groups*chunks*16-1]
	_ = scales[2*rows*groups-1]
	_ = xq[groups*chunks*32-1]
	_ = xs[groups-1]
	_ = xc[groups-1]
	_ = y[rows-1]
	if storedAsm {
		q4q8RowsAsm(codes, scales, xq, xs, xc, rows, groups, chunks, y)
		return
	}
	q4q8RowsGo(codes, scales, xq, xs, rows, groups, chunks, y)
}

// q4q8RowsGo is the portable q4q8Rows, the reference of the assembly.
func q4q8RowsGo(codes, scales []byte, xq []int8, xs []float32, rows, groups, chunks int, y []float32) {
	for r := range rows {
		var acc float32
		for k := range groups {
			var sum int32
			for c := range chunks {
				b := codes[((r*groups+k)*chunks+c)*16:][:16]
				q := xq[(k*chunks+c)*32:][:32]
				for j, v := range b {
					sum += (int32(v&15)-8)*int32(q[j]) + (int32(v>>4)-8)*int32(q[16+j])
				}
			}
			s := f16ToFloat32(binary.LittleEndian.Uint16(scales[2*(r*groups+k):])) * xs[k]
			acc += float32(sum) * s
		}
		y[r] = acc
	}
}

// q4q8Blocks checks the slices and runs the block-order kernel on rows
// consecutive rows of groups groups of 32 codes.
func q4q8Blocks(codes, scales []byte, xq []int8, xs4 []float32, xc4 []int32, rows, groups int, y []float32) {
	_ = codes[rows*groups*16-1]
	_ = scales[2*rows*groups-1]
	_ = xq[groups*32-1]
	_ = xs4[4*groups-1]
	_ = xc4[4*groups-1]
	_ = y[rows-1]
	if storedVNNI && storedAVX512 {
		q4q8BlocksAsm(codes, scales, xq, xs4, xc4, rows, groups, y)
		return
	}
	q4q8BlocksGo(codes, scales, xq, xs4, xc4, rows, groups, y)
}
