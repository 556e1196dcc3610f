package quant

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// maxF16 is the largest finite half-precision value, the cap of a scale.
const maxF16 = 65504

// Tensor is a quantized rows × cols matrix.
type Tensor struct {
	Rows, Cols int
	Scheme     Scheme
	// Codes holds the offset-binary codes as a little-endian bit stream
	// (see the package documentation), Scheme.CodeBytes(Rows, Cols) long.
	Codes []byte
	// Scales holds the F16 bit patterns of the scales of the
	// Scheme.NumGroups(Rows, Cols) groups, in order.
	Scales []uint16
}

// groupScale returns the F16 scale of grp, whose largest magnitude is
// amax (finite), and the same scale as a float32 with its inverse (0 for a
// zero scale, which makes every code 0). The scale is amax/Q for symmetric
// codes, or v/-2^(Bits-1) for full-range codes, v being the first element
// of largest magnitude; it is rounded to the nearest F16, away from zero in
// the subnormal range (where F16 steps are coarse, so that the extreme is
// not clamped and a tiny group does not vanish), and its magnitude is
// clamped to the largest finite F16.
func groupScale(grp []float32, amax float32, s Scheme) (uint16, float32, float32) {
	var sc float32
	if s.Full {
		v := amax
		for _, x := range grp {
			if x == -amax {
				v = x
				break
			}
			if x == amax {
				break
			}
		}
		sc = v / -float32(int(1)<<(s.Bits-1))
	} else {
		sc = amax / float32(s.MaxCode())
	}
	sc = max(-maxF16, min(maxF16, sc))
	h := formats.Float32ToF16(sc)
	f := formats.F16ToFloat32(h)
	if h&0x7c00 == 0 && abs32(f) < abs32(sc) {
		h++ // one step further from zero
		f = formats.F16ToFloat32(h)
	}
	if f == 0 {
		return h, 0, 0
	}
	return h, f, 1 / f
}

// abs32 returns |x|.
func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// codeRange returns the smallest and largest code of s.
func codeRange(s Scheme) (lo, hi float32) {
	if s.Full {
		return -float32(int(1) << (s.Bits - 1)), float32(s.MaxCode())
	}
	return -float32(s.MaxCode()), float32(s.MaxCode())
}

// roundMagic is 1.5·2^23: adding and subtracting it rounds a float32 of
// magnitude below 2^22 to an integer, ties to even.
const roundMagic = 12582912

// level returns clamp(round(x·inv), lo, hi) as a float32, ties to even.
// Clamping first is the same as clamping the rounded value, since the
// bounds are integers, and keeps the magic-number rounding in range.
func level(x, inv, lo, hi float32) float32 {
	t := x * inv
	if t > hi {
		t = hi
	} else if t < lo {
		t = lo
	}
	return (t + roundMagic) - roundMagic
}

// absMax returns the largest magnitude of x; NaN when x holds a NaN.
// Finite magnitudes order like their bit patterns, and NaN patterns lie
// above +Inf, so the loop is a branch-free integer maximum.
func absMax(x []float32) float32 {
	var m uint32
	for _, v := range x {
		m = max(m, math.Float32bits(v)&0x7fffffff)
	}
	return math.Float32frombits(m)
}

// Quantize quantizes the row-major rows × cols matrix data with scheme s.
// Non-finite values and shapes that do not match data are errors wrapping
// formats.ErrInvalid.
func Quantize(data []float32, rows, cols int, s Scheme) (*Tensor, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if rows < 0 || cols < 0 || rows*cols != len(data) {
		return nil, fmt.Errorf("quant: %w: %d values for a %d × %d matrix", formats.ErrInvalid, len(data), rows, cols)
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("quant: %w: element %d is %v", formats.ErrInvalid, i, v)
		}
	}
	t := &Tensor{
		Rows: rows, Cols: cols, Scheme: s,
		Codes:  make([]byte, s.CodeBytes(rows, cols)),
		Scales: make([]uint16, s.NumGroups(rows, cols)),
	}
	if len(data) > 0 && len(t.Scales) == 0 {
		// Unreachable for a valid scheme; a tensor without scales would
		// decode to zeros.
		return nil, fmt.Errorf("quant: %w: %s gives no scales for a %d × %d matrix", formats.ErrInvalid, s, rows, cols)
	}
	lo, hi := codeRange(s)
	off := 1 << (s.Bits - 1)
	g := s.group(cols)
	w := newBitWriter(t.Codes, s.Bits)
	for k := range t.Scales {
		grp := data[k*g : min((k+1)*g, len(data))]
		h, _, inv := groupScale(grp, absMax(grp), s)
		t.Scales[k] = h
		for _, v := range grp {
			w.put(uint32(int(level(v, inv, lo, hi)) + off))
		}
	}
	w.flush()
	return t, nil
}

// NumElements returns Rows·Cols.
func (t *Tensor) NumElements() int { return t.Rows * t.Cols }

// Check reports, wrapping formats.ErrInvalid, a tensor whose scheme, code
// length or scale count does not match its shape (for example one read
// from a file).
func (t *Tensor) Check() error {
	if err := t.Scheme.Validate(); err != nil {
		return err
	}
	if t.Rows < 0 || t.Cols < 0 {
		return fmt.Errorf("quant: %w: shape %d × %d", formats.ErrInvalid, t.Rows, t.Cols)
	}
	if want := t.Scheme.CodeBytes(t.Rows, t.Cols); len(t.Codes) != want {
		return fmt.Errorf("quant: %w: %d code bytes for %s %d × %d (want %d)", formats.ErrInvalid, len(t.Codes), t.Scheme, t.Rows, t.Cols, want)
	}
	if want := t.Scheme.NumGroups(t.Rows, t.Cols); len(t.Scales) != want {
		return fmt.Errorf("quant: %w: %d scales for %s %d × %d (want %d)", formats.ErrInvalid, len(t.Scales), t.Scheme, t.Rows, t.Cols, want)
	}
	return nil
}

// Dequantize writes the rows × cols values code·scale into dst, which must
// hold NumElements values; it panics otherwise, or if t fails Check.
// Scales that are not finite (possible only in a tensor not made by
// Quantize) decode as given.
func (t *Tensor) Dequantize(dst []float32) {
	if err := t.Check(); err != nil {
		panic(err)
	}
	if len(dst) != t.NumElements() {
		panic(fmt.Sprintf("quant: Dequantize into %d values, want %d", len(dst), t.NumElements()))
	}
	if t.Cols == 0 {
		return
	}
	s := t.Scheme
	g := s.group(t.Cols)
	// lut maps an offset code to its signed value.
	var lut [256]float32
	off := 1 << (s.Bits - 1)
	for u := 0; u < 1<<s.Bits; u++ {
		lut[u] = float32(u - off)
	}
	for k, h := range t.Scales {
		i := k * g
		j := min(i+g, len(dst))
		decodeRun(dst[i:j], t.Codes, i, s.Bits, formats.F16ToFloat32(h), &lut)
	}
}

// FakeQuant writes dequantize(quantize(src)) into dst (which may alias src)
// without materialising codes: the forward weights of quantization-aware
// training. It matches Quantize followed by Dequantize bit for bit on
// finite input; non-finite values yield non-finite output instead of an
// error. It panics when the lengths do not match rows × cols or s is
// invalid.
func FakeQuant(dst, src []float32, rows, cols int, s Scheme) {
	if err := s.Validate(); err != nil {
		panic(err)
	}
	if len(src) != rows*cols || len(dst) != rows*cols {
		panic(fmt.Sprintf("quant: FakeQuant of %d → %d values for %d × %d", len(src), len(dst), rows, cols))
	}
	if cols == 0 {
		return
	}
	lo, hi := codeRange(s)
	g := s.group(cols)
	for c0 := 0; c0 < len(src); c0 += g {
		c1 := min(c0+g, len(src))
		grp := src[c0:c1]
		amax := absMax(grp)
		if amax != amax || math.IsInf(float64(amax), 0) {
			for j := c0; j < c1; j++ {
				dst[j] = float32(math.NaN())
			}
			continue
		}
		_, sc, inv := groupScale(grp, amax, s)
		out := dst[c0:c1]
		for j, v := range grp {
			out[j] = level(v, inv, lo, hi) * sc
		}
	}
}
