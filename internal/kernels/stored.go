package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
)

// Format is the encoding of the elements of a Stored matrix.
type Format uint8

const (
	// F32 elements are float32 values (Stored.F32).
	F32 Format = iota
	// BF16 elements are bfloat16 bit patterns, two little-endian bytes
	// each (Stored.Raw).
	BF16
	// F16 elements are IEEE half-precision bit patterns, two
	// little-endian bytes each (Stored.Raw).
	F16
	// Quant elements are offset-binary codes of Stored.Bits bits packed
	// into a little-endian bit stream over the row-major matrix (element i
	// occupies bits [i·Bits, (i+1)·Bits) counting from the least
	// significant bit of Raw[0]), in groups of Stored.Group consecutive
	// elements that share one F16 scale (Stored.Scales): element =
	// (u − 2^(Bits−1))·scale. Group 0 makes each row one group. Groups
	// run on across row ends when Cols is not a multiple of Group. This
	// is the layout of quant.Tensor.
	Quant
)

// String names the format.
func (f Format) String() string {
	switch f {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	case Quant:
		return "quant"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Stored is a Rows × Cols row-major matrix in the encoding it is stored
// in: the kernels of this file read it as it is, decoding elements in
// registers, and never build a float32 copy of the whole matrix.
type Stored struct {
	Format     Format
	Rows, Cols int
	// F32 holds the elements of an F32 matrix.
	F32 []float32
	// Raw holds the bytes of a BF16 or F16 matrix (2 per element), or the
	// packed codes of a Quant matrix (ceil(Rows·Cols·Bits/8) bytes). It
	// may be a view of a memory-mapped file.
	Raw []byte
	// Scales holds the F16 scales of a Quant matrix, two little-endian
	// bytes per group.
	Scales []byte
	// Bits (2…8) and Group (elements per scale; 0: one per row) describe
	// a Quant matrix.
	Bits, Group int
}

// group returns the effective group length.
func (w *Stored) group() int {
	if w.Group == 0 {
		return w.Cols
	}
	return w.Group
}

// Check reports a matrix whose slices do not match its shape and format.
func (w *Stored) Check() error {
	n := w.Rows * w.Cols
	if w.Rows < 0 || w.Cols < 0 {
		return fmt.Errorf("kernels: stored matrix of shape %d × %d", w.Rows, w.Cols)
	}
	switch w.Format {
	case F32:
		if len(w.F32) != n {
			return fmt.Errorf("kernels: F32 matrix %d × %d holds %d values", w.Rows, w.Cols, len(w.F32))
		}
	case BF16, F16:
		if len(w.Raw) != 2*n {
			return fmt.Errorf("kernels: %s matrix %d × %d holds %d bytes, want %d", w.Format, w.Rows, w.Cols, len(w.Raw), 2*n)
		}
	case Quant:
		if w.Bits < 2 || w.Bits > 8 || w.Group < 0 {
			return fmt.Errorf("kernels: quantized matrix of %d bits, group %d", w.Bits, w.Group)
		}
		if want := (n*w.Bits + 7) / 8; len(w.Raw) != want {
			return fmt.Errorf("kernels: quantized matrix %d × %d holds %d code bytes, want %d", w.Rows, w.Cols, len(w.Raw), want)
		}
		groups := 0
		if n > 0 {
			groups = (n + w.group() - 1) / w.group()
		}
		if len(w.Scales) != 2*groups {
			return fmt.Errorf("kernels: quantized matrix %d × %d holds %d scale bytes, want %d", w.Rows, w.Cols, len(w.Scales), 2*groups)
		}
	default:
		return fmt.Errorf("kernels: unknown stored format %d", w.Format)
	}
	return nil
}

// Bytes returns the bytes the matrix's elements (and scales) occupy, the
// bytes a product reads.
func (w *Stored) Bytes() int64 {
	if w.Format == F32 {
		return 4 * int64(len(w.F32))
	}
	return int64(len(w.Raw) + len(w.Scales))
}

// f16ToFloat32 converts an IEEE half-precision bit pattern.
func f16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value = mant·2^-24.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// scale returns the float32 value of group k's scale.
func (w *Stored) scale(k int) float32 {
	return f16ToFloat32(binary.LittleEndian.Uint16(w.Scales[2*k:]))
}

// code returns the signed code of element i of a Quant matrix.
func (w *Stored) code(i int) float32 {
	bit := i * w.Bits
	p := bit >> 3
	v := uint32(w.Raw[p])
	if p+1 < len(w.Raw) {
		v |= uint32(w.Raw[p+1]) << 8
	}
	u := (v >> (bit & 7)) & (1<<w.Bits - 1)
	return float32(int(u) - 1<<(w.Bits-1))
}

// DecodeRows writes rows r0 … r1−1 of w as float32 into dst, row-major,
// which must hold (r1−r0)·Cols values.
func (w *Stored) DecodeRows(r0, r1 int, dst []float32) {
	c := w.Cols
	if r0 < 0 || r1 > w.Rows || r0 > r1 || len(dst) < (r1-r0)*c {
		panic(fmt.Sprintf("kernels: DecodeRows(%d, %d) of %d rows into %d values", r0, r1, w.Rows, len(dst)))
	}
	dst = dst[:(r1-r0)*c]
	base := r0 * c
	switch w.Format {
	case F32:
		copy(dst, w.F32[base:base+len(dst)])
	case BF16:
		raw := w.Raw[2*base : 2*(base+len(dst))]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case F16:
		raw := w.Raw[2*base : 2*(base+len(dst))]
		for i := range dst {
			dst[i] = f16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case Quant:
		g := w.group()
		for i := 0; i < len(dst); {
			e := base + i
			k := e / g
			end := min((k+1)*g-base, len(dst))
			s := w.scale(k)
			seg := dst[i:end]
			if w.Bits == 4 && e&1 == 0 {
				// Pairs of codes by table, scaled as they are written.
				raw := w.Raw[e>>1:]
				j := 0
				for t := 0; j+1 < len(seg); j, t = j+2, t+1 {
					p := &codes4[raw[t]]
					seg[j], seg[j+1] = p[0]*s, p[1]*s
				}
				if j < len(seg) {
					seg[j] = float32(int(raw[j>>1]&15)-8) * s
				}
			} else {
				decodeCodes(w, base+i, seg)
				for j := range seg {
					seg[j] *= s
				}
			}
			i = end
		}
	}
}

// MaxStoredRows is the largest number of rows of x that MulStored computes
// by reading w directly; above it, w is decoded a block of rows at a time
// into a scratch buffer and multiplied by Sgemm, so that a long prefill
// runs at matrix-multiply speed.
const MaxStoredRows = 8

// decodeBlock is the most elements MulStored decodes at a time for a
// large product (4 MiB of float32).
const decodeBlock = 1 << 20

// MulStored computes
//
//	Y = X·Wᵀ + beta·Y
//
// for the n rows of X (n × w.Cols, row stride ldx) into Y (n × w.Rows, row
// stride ldy): each output element is the dot product of a row of X with a
// row of the stored matrix w. Up to MaxStoredRows rows are computed
// directly on the stored encoding, in parallel over the rows of w, with
// AVX2 assembly for BF16, F16, 8-bit and 4-bit codes where the CPU has it;
// larger n decodes w a block of rows at a time and calls Sgemm. When beta
// is zero Y is overwritten. It panics when w fails Check or a slice is too
// short.
func (o Options) MulStored(n int, x []float32, ldx int, w *Stored, y []float32, ldy int, beta float32) {
	if err := w.Check(); err != nil {
		panic(err)
	}
	if n < 0 {
		panic(fmt.Sprintf("kernels: MulStored of %d rows", n))
	}
	checkMatrix("X", n, w.Cols, x, ldx)
	checkMatrix("Y", n, w.Rows, y, ldy)
	if n == 0 || w.Rows == 0 {
		return
	}
	if w.Cols == 0 {
		scaleMatrix(n, w.Rows, beta, y, ldy)
		return
	}
	threads := o.Threads
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	if w.Format == F32 {
		o.Sgemm(false, true, n, w.Rows, w.Cols, 1, x, ldx, w.F32, w.Cols, beta, y, ldy)
		return
	}
	if n > MaxStoredRows {
		rb := max(1, decodeBlock/w.Cols)
		buf := getBuffer(min(rb, w.Rows) * w.Cols)
		defer buf.release()
		for r0 := 0; r0 < w.Rows; r0 += rb {
			r1 := min(r0+rb, w.Rows)
			w.DecodeRows(r0, r1, buf.s)
			o.Sgemm(false, true, n, r1-r0, w.Cols, 1, x, ldx, buf.s, w.Cols, beta, y[r0:], ldy)
		}
		return
	}
	// Parallel over bands of output rows; a band is at least 64 rows and
	// 512 KiB of stored matrix, so that small matrices (a VLoRA layer's
	// factors) stay on the calling goroutine: each band costs a hand-off
	// between threads, which on a busy machine can take longer than the
	// product.
	bands := min(threads, max(1, w.Rows/64), max(1, int(w.Bytes()>>19)))
	if w.q8Path(n) {
		mulQ4Q8(x, w, y, beta, bands)
		return
	}
	if w.bf16Pairs(n) {
		mulBF16Pairs(x, w, y, beta, bands)
		return
	}
	if bands == 1 {
		mulStoredRows(n, x, ldx, w, y, ldy, beta, 0, w.Rows)
		return
	}
	inBands(w.Rows, bands, func(r0, r1 int) {
		mulStoredRows(n, x, ldx, w, y, ldy, beta, r0, r1)
	})
}

// mulStoredRows computes output columns r0 … r1−1 of MulStored, for
// n ≤ MaxStoredRows, four rows of X at a time.
func mulStoredRows(n int, x []float32, ldx int, w *Stored, y []float32, ldy int, beta float32, r0, r1 int) {
	var xs [4][]float32
	var out [4]float32
	var perm, row *buffer
	width := 0
	if w.q4Chunked() {
		perm = getBuffer(4 * w.Cols)
		defer perm.release()
		width = q4Width(n, w.group())
	} else if w.Format == Quant && w.Bits != 8 {
		// Codes without a kernel of their own (groups across row ends,
		// 2, 3, 5, 6, 7 bits): each row is decoded once, with its
		// scales, and multiplied into the vectors by the float dot
		// product.
		row = getBuffer(w.Cols)
		defer row.release()
	}
	for i0 := 0; i0 < n; i0 += 4 {
		m := min(4, n-i0)
		for i := range 4 {
			// Missing rows repeat the first, whose results are dropped.
			xs[i] = x[(i0+min(i, m-1))*ldx:][:w.Cols]
			if perm != nil {
				xs[i] = q4Order(perm.s[i*w.Cols:(i+1)*w.Cols], xs[i], width)
			}
		}
		for r := r0; r < r1; r++ {
			if row != nil {
				w.DecodeRows(r, r+1, row.s)
				for i := range m {
					out[i] = dot(row.s, xs[i])
				}
			} else {
				rowDots(w, r, m, width, &xs, &out)
			}
			for i := range m {
				p := (i0+i)*ldy + r
				if beta == 0 {
					y[p] = out[i]
				} else {
					y[p] = out[i] + beta*y[p]
				}
			}
		}
	}
}

// q4Chunked reports whether products with w go through the 4-bit chunk
// kernels: 4-bit codes in whole groups of a multiple of 16 inside each row,
// with the assembly available. Their vectors are then in q4Order.
func (w *Stored) q4Chunked() bool {
	g := w.group()
	return storedAsm && w.Format == Quant && w.Bits == 4 && g%16 == 0 && w.Cols%g == 0
}

// q4Order writes x into dst in chunk order of width (16 or 32) — of every
// width elements, those of even index, then those of odd index — and
// returns dst.
func q4Order(dst, x []float32, width int) []float32 {
	h := width / 2
	for c := 0; c+width <= len(x); c += width {
		src, d := x[c:c+width], dst[c:c+width]
		for j := range h {
			d[j], d[h+j] = src[2*j], src[2*j+1]
		}
	}
	return dst
}

// rowDots writes the dot products of row r of w with the first m of the
// four vectors xs (the others repeat the first; for the 4-bit chunk
// kernels, in chunk order of width).
func rowDots(w *Stored, r, m, width int, xs *[4][]float32, out *[4]float32) {
	c := w.Cols
	switch w.Format {
	case BF16, F16:
		raw := w.Raw[2*r*c : 2*(r+1)*c]
		done := halfDots(w.Format, raw, m, xs, out)
		if done < c {
			for i := range m {
				out[i] += halfDotGeneric(w.Format, raw[2*done:], xs[i][done:])
			}
		}
	case Quant:
		quantRowDots(w, r, m, width, xs, out)
	}
}

// halfDotGeneric returns Σ x[j]·w[j] for the BF16 or F16 elements raw.
func halfDotGeneric(f Format, raw []byte, x []float32) float32 {
	var s0, s1 float32
	j := 0
	if f == BF16 {
		for ; j+1 < len(x); j += 2 {
			s0 += x[j] * math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*j:]))<<16)
			s1 += x[j+1] * math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*j+2:]))<<16)
		}
		if j < len(x) {
			s0 += x[j] * math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*j:]))<<16)
		}
		return s0 + s1
	}
	for ; j < len(x); j++ {
		s0 += x[j] * f16ToFloat32(binary.LittleEndian.Uint16(raw[2*j:]))
	}
	return s0
}

// quantRowDots computes the dot products of row r of the quantized w, one
// segment (the part of a group inside the row) at a time.
func quantRowDots(w *Stored, r, m, width int, xs *[4][]float32, out *[4]float32) {
	c, g := w.Cols, w.group()
	base := r * c
	*out = [4]float32{}
	if w.q4Chunked() {
		// Whole groups inside the row, 16 codes (8 bytes) at a time, the
		// vectors in chunk order.
		q4GroupDots(w.Raw[base/2:(base+c)/2], w.Scales[2*(base/g):2*((base+c)/g)], m, xs, g, width, out)
		return
	}
	var seg [4]float32
	for j := 0; j < c; {
		k := (base + j) / g
		end := min((k+1)*g-base, c)
		codeDots(w, base+j, end-j, m, xs, j, &seg)
		s := w.scale(k)
		for i := range m {
			out[i] += seg[i] * s
		}
		j = end
	}
}

// codeDotsGeneric writes Σ code(first+t)·xs[i][off+t] over t < n for
// i < m, decoding 64 codes at a time.
func codeDotsGeneric(w *Stored, first, n, m int, xs *[4][]float32, off int, seg *[4]float32) {
	var buf [64]float32
	*seg = [4]float32{}
	rows := m
	for t0 := 0; t0 < n; t0 += len(buf) {
		k := min(len(buf), n-t0)
		decodeCodes(w, first+t0, buf[:k])
		for i := range rows {
			seg[i] += dot(buf[:k], xs[i][off+t0:off+t0+k])
		}
	}
}

// decodeCodes writes the signed codes of elements first … first+len(dst)−1
// of the quantized w into dst.
func decodeCodes(w *Stored, first int, dst []float32) {
	switch w.Bits {
	case 8:
		for j, b := range w.Raw[first : first+len(dst)] {
			dst[j] = float32(int(b) - 128)
		}
	case 4:
		i, j := first, 0
		if i&1 == 1 && len(dst) > 0 {
			dst[0] = float32(int(w.Raw[i>>1]>>4) - 8)
			i, j = i+1, 1
		}
		raw := w.Raw[i>>1:]
		for k := 0; j+1 < len(dst); j, k = j+2, k+1 {
			p := &codes4[raw[k]]
			dst[j], dst[j+1] = p[0], p[1]
			i += 2
		}
		if j < len(dst) {
			dst[j] = float32(int(w.Raw[i>>1]&15) - 8)
		}
	case 2:
		j := 0
		for ; j < len(dst) && (first+j)&3 != 0; j++ {
			dst[j] = w.code(first + j)
		}
		raw := w.Raw[(first+j)>>2:]
		for k := 0; j+3 < len(dst); j, k = j+4, k+1 {
			p := &codes2[raw[k]]
			dst[j], dst[j+1], dst[j+2], dst[j+3] = p[0], p[1], p[2], p[3]
		}
		for ; j < len(dst); j++ {
			dst[j] = w.code(first + j)
		}
	case 3:
		// Eight codes in three bytes from a multiple of 8.
		j := 0
		for ; j < len(dst) && (first+j)&7 != 0; j++ {
			dst[j] = w.code(first + j)
		}
		raw := w.Raw[(first+j)*3>>3:]
		for k := 0; j+7 < len(dst); j, k = j+8, k+3 {
			v := uint32(raw[k]) | uint32(raw[k+1])<<8 | uint32(raw[k+2])<<16
			d := dst[j : j+8 : j+8]
			for t := range d {
				d[t] = float32(int(v>>(3*t)&7) - 4)
			}
		}
		for ; j < len(dst); j++ {
			dst[j] = w.code(first + j)
		}
	default:
		for j := range dst {
			dst[j] = w.code(first + j)
		}
	}
}

// codes4 and codes2 are the signed codes of each byte of 4-bit (two, low
// nibble first) and 2-bit (four, low bits first) codes.
var codes4, codes2 = func() (t4 [256][2]float32, t2 [256][4]float32) {
	for b := range 256 {
		t4[b] = [2]float32{float32(b&15 - 8), float32(b>>4 - 8)}
		for k := range 4 {
			t2[b][k] = float32(b>>(2*k)&3 - 2)
		}
	}
	return t4, t2
}()
