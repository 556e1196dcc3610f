package formats

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// f16Value is an independent definition of the value of a half-precision bit
// pattern, computed in float64 from the IEEE 754 formula. The Inf pattern
// maps to 2^16, the value the next binade would start at, so that rounding
// to nearest across the top of the range can be checked uniformly.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	man := float64(h & 0x3ff)
	switch exp {
	case 0x1f:
		if man != 0 {
			return math.NaN()
		}
		return sign * 65536
	case 0:
		return sign * man * math.Ldexp(1, -24)
	}
	return sign * (1 + man/1024) * math.Ldexp(1, exp-15)
}

// bf16Value is the value of a bfloat16 pattern computed from the formula,
// with the Inf pattern mapped to 2^128 like f16Value.
func bf16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>7) & 0xff
	man := float64(h & 0x7f)
	switch exp {
	case 0xff:
		if man != 0 {
			return math.NaN()
		}
		return sign * math.Ldexp(1, 128)
	case 0:
		return sign * man * math.Ldexp(1, -133)
	}
	return sign * (1 + man/128) * math.Ldexp(1, exp-127)
}

// nearestEven returns the pattern among the positive patterns 0..top (whose
// values, given by value, increase with the pattern) nearest to |f|, ties to
// the even pattern, with f's sign bit. Values past top's round to top.
func nearestEven(f float64, top uint16, value func(uint16) float64) uint16 {
	var sign uint16
	if math.Signbit(f) {
		sign = 0x8000
	}
	a := math.Abs(f)
	if a >= value(top) {
		return sign | top
	}
	// Largest lo with value(lo) <= a.
	lo, hi := uint16(0), top
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if value(mid) <= a {
			lo = mid
		} else {
			hi = mid
		}
	}
	dlo, dhi := a-value(lo), value(hi)-a
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	}
	return sign | hi
}

func TestF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToFloat32(h)
		want := f16Value(h)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		if isNaN {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("F16ToFloat32(%#04x) = %v, want NaN", h, f)
			}
			back := Float32ToF16(f)
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != h&0x8000 {
				t.Fatalf("Float32ToF16(F16ToFloat32(%#04x)) = %#04x, want a NaN of the same sign", h, back)
			}
			continue
		}
		if h&0x7fff == 0x7c00 {
			want = math.Copysign(math.Inf(1), want)
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("F16ToFloat32(%#04x) = %v, want %v", h, f, want)
		}
		if back := Float32ToF16(f); back != h {
			t.Fatalf("Float32ToF16(F16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

func TestBF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToFloat32(h)
		isNaN := h&0x7f80 == 0x7f80 && h&0x7f != 0
		if isNaN {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("BF16ToFloat32(%#04x) = %v, want NaN", h, f)
			}
			back := Float32ToBF16(f)
			if back&0x7f80 != 0x7f80 || back&0x7f == 0 || back&0x8000 != h&0x8000 {
				t.Fatalf("Float32ToBF16(BF16ToFloat32(%#04x)) = %#04x, want a NaN of the same sign", h, back)
			}
			continue
		}
		want := bf16Value(h)
		if h&0x7fff == 0x7f80 {
			want = math.Copysign(math.Inf(1), want)
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("BF16ToFloat32(%#04x) = %v, want %v", h, f, want)
		}
		if back := Float32ToBF16(f); back != h {
			t.Fatalf("Float32ToBF16(BF16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

// narrowingInputs returns float32 values that exercise rounding: for every
// positive finite half pattern, the exact midpoint to the next pattern and
// the float32 values either side of it, plus an even sample of all float32
// bit patterns. Midpoints of half patterns are float32-representable since a
// half significand has 11 bits.
func narrowingInputs(value func(uint16) float64, top uint16) []float32 {
	var in []float32
	for h := uint16(0); h < top; h++ {
		mid := float32((value(h) + value(h+1)) / 2)
		in = append(in, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))))
	}
	// Every 4099th float32 bit pattern (a prime stride, so mantissa bits vary).
	for b := uint64(0); b < 1<<32; b += 4099 {
		in = append(in, math.Float32frombits(uint32(b)))
	}
	return in
}

func TestFloat32ToF16Rounding(t *testing.T) {
	for _, f := range narrowingInputs(f16Value, 0x7c00) {
		got := Float32ToF16(f)
		if math.IsNaN(float64(f)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("Float32ToF16(NaN %#08x) = %#04x, want NaN", math.Float32bits(f), got)
			}
			continue
		}
		want := nearestEven(float64(f), 0x7c00, f16Value)
		if got != want {
			t.Fatalf("Float32ToF16(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestFloat32ToBF16Rounding(t *testing.T) {
	for _, f := range narrowingInputs(bf16Value, 0x7f80) {
		got := Float32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 || got&0x8000 != uint16(math.Float32bits(f)>>16)&0x8000 {
				t.Fatalf("Float32ToBF16(NaN %#08x) = %#04x, want NaN of the same sign", math.Float32bits(f), got)
			}
			continue
		}
		want := nearestEven(float64(f), 0x7f80, bf16Value)
		if got != want {
			t.Fatalf("Float32ToBF16(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestNarrowingCases(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		in   float32
		f16  uint16
		bf16 uint16
	}{
		{"zero", 0, 0x0000, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{"one", 1, 0x3c00, 0x3f80},
		{"minus two", -2, 0xc000, 0xc000},
		// 1 + 2^-11 is halfway between half 1 and 1+2^-10: even is 1.
		{"f16 tie to even down", 1 + 0x1p-11, 0x3c00, 0x3f80},
		// 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9: up.
		{"f16 tie to even up", 1 + 3*0x1p-11, 0x3c02, 0x3f80},
		{"f16 just above tie", 1 + 0x1p-11 + 0x1p-23, 0x3c01, 0x3f80},
		// 1 + 2^-8 is halfway between bfloat16 1 and 1+2^-7: even is 1.
		{"bf16 tie to even down", 1 + 0x1p-8, 0x3c04, 0x3f80},
		{"bf16 tie to even up", 1 + 3*0x1p-8, 0x3c0c, 0x3f82},
		{"bf16 just above tie", 1 + 0x1p-8 + 0x1p-23, 0x3c04, 0x3f81},
		{"f16 max", 65504, 0x7bff, 0x4780},
		// 65520 is halfway between 65504 (odd pattern 0x7bff) and 2^16, so
		// it rounds to the even side, which is Inf.
		{"f16 overflow at tie", 65520, 0x7c00, 0x4780},
		{"f16 below overflow tie", math.Nextafter32(65520, 0), 0x7bff, 0x4780},
		{"f16 overflow", 1e6, 0x7c00, 0x4974},
		{"f16 negative overflow", -1e6, 0xfc00, 0xc974},
		{"f16 min normal", 0x1p-14, 0x0400, 0x3880},
		{"f16 min subnormal", 0x1p-24, 0x0001, 0x3380},
		{"f16 max subnormal", 1023 * 0x1p-24, 0x03ff, 0x3880},
		// Halfway between the largest subnormal (odd) and the smallest
		// normal: rounds up into the normal range.
		{"f16 subnormal tie to normal", 1023.5 * 0x1p-24, 0x0400, 0x3880},
		// Halfway between 0 and the smallest subnormal: even is 0.
		{"f16 underflow tie", 0x1p-25, 0x0000, 0x3300},
		{"f16 above underflow tie", 0x1p-25 + 0x1p-40, 0x0001, 0x3300},
		{"f16 subnormal tie up", 3 * 0x1p-25, 0x0002, 0x33c0},
		{"f16 negative underflow", -0x1p-30, 0x8000, 0xb080},
		// 2^-130 is a float32 subnormal (bits 0x00080000) and a bfloat16
		// subnormal; 2^-140 is below the smallest bfloat16 subnormal 2^-133.
		{"f32 subnormal", 0x1p-130, 0x0000, 0x0008},
		{"bf16 underflow", 0x1p-140, 0x0000, 0x0000},
		{"bf16 underflow tie", 0x1p-134, 0x0000, 0x0000},
		{"bf16 subnormal tie up", 3 * 0x1p-134, 0x0000, 0x0002},
		{"f32 max", math.MaxFloat32, 0x7c00, 0x7f80},
		// Largest float32 that rounds down to the largest bfloat16.
		{"bf16 max", math.Float32frombits(0x7f7f7fff), 0x7c00, 0x7f7f},
		{"bf16 overflow at tie", math.Float32frombits(0x7f7f8000), 0x7c00, 0x7f80},
		{"inf", inf, 0x7c00, 0x7f80},
		{"negative inf", -inf, 0xfc00, 0xff80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Float32ToF16(tc.in); got != tc.f16 {
				t.Errorf("%s: Float32ToF16(%v) = %#04x, want %#04x", tc.name, tc.in, got, tc.f16)
			}
			if got := Float32ToBF16(tc.in); got != tc.bf16 {
				t.Errorf("%s: Float32ToBF16(%v) = %#04x, want %#04x", tc.name, tc.in, got, tc.bf16)
			}
		})
	}
	// A signalling NaN must not turn into Inf when its payload is cut.
	snan := math.Float32frombits(0x7f800001)
	if got := Float32ToBF16(snan); got != 0x7fc0 {
		t.Errorf("Float32ToBF16(signalling NaN) = %#04x, want 0x7fc0", got)
	}
	if got := Float32ToF16(snan); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("Float32ToF16(signalling NaN) = %#04x, want NaN", got)
	}
	if got := Float32ToBF16(-snan); got != 0xffc0 {
		t.Errorf("Float32ToBF16(-signalling NaN) = %#04x, want 0xffc0", got)
	}
}

// TestBF16RelativeError checks the rounding error bound of bfloat16: with 8
// significant bits and round to nearest, |bf16(x) − x| ≤ 2^-8·|x| for every
// x whose result is a finite normal number (subnormals lose relative
// precision by design).
func TestBF16RelativeError(t *testing.T) {
	const tol = 0x1p-8 // half a unit in the 8th significant bit
	rng := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	for range 200000 {
		x := math.Float32frombits(rng.Uint32())
		h := Float32ToBF16(x)
		y := BF16ToFloat32(h)
		if math.IsNaN(float64(x)) || math.IsInf(float64(y), 0) || h&0x7f80 == 0 {
			continue
		}
		rel := math.Abs(float64(y)-float64(x)) / math.Abs(float64(x))
		worst = max(worst, rel)
		if rel > tol {
			t.Fatalf("bf16 round trip of %v = %v: relative error %g > %g", x, y, rel, tol)
		}
	}
	// The bound is nearly attained; a much smaller worst case would mean
	// the sample did not exercise rounding.
	if worst < tol/2 {
		t.Errorf("worst relative error %g, suspiciously below %g", worst, tol/2)
	}
}

func TestParseDType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DType
		ok   bool
	}{
		{"f32", F32, true}, {"F16", F16, true}, {"bf16", BF16, true}, {"BF16", BF16, true},
		{"f64", F64, true}, {"i32", I32, true},
		{"float32", 0, false}, {"", 0, false}, {"f8_e4m3", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDType(tc.in)
			if !tc.ok {
				checkInvalid(t, err, tc.in)
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseDType(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDecodeInts(t *testing.T) {
	for _, tc := range []struct {
		dtype DType
		raw   []byte
		want  []int
	}{
		{safetensors.BOOL, []byte{0, 1}, []int{0, 1}},
		{safetensors.U8, []byte{0, 255}, []int{0, 255}},
		{safetensors.I8, []byte{0x7f, 0x80}, []int{127, -128}},
		{safetensors.I16, []byte{0xff, 0x7f, 0x00, 0x80}, []int{32767, -32768}},
		{safetensors.U16, []byte{0xff, 0xff}, []int{65535}},
		{I32, []byte{0xfe, 0xff, 0xff, 0xff, 5, 0, 0, 0}, []int{-2, 5}},
		{safetensors.U32, []byte{0xff, 0xff, 0xff, 0xff}, []int{1<<32 - 1}},
		{I64, []byte{0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []int{-3}},
		{safetensors.U64, []byte{7, 0, 0, 0, 0, 0, 0, 0}, []int{7}},
	} {
		t.Run(tc.dtype.String(), func(t *testing.T) {
			t.Parallel()
			got := make([]int, len(tc.want))
			if err := decodeInt(got, tc.raw, tc.dtype); err != nil {
				t.Errorf("%s: %v", tc.dtype, err)
				return
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%s: got %v, want %v", tc.dtype, got, tc.want)
					break
				}
			}
			if !IsInt(tc.dtype) || IsFloat(tc.dtype) {
				t.Errorf("%s: IsInt = %v, IsFloat = %v", tc.dtype, IsInt(tc.dtype), IsFloat(tc.dtype))
			}
		})
	}
	checkInvalid(t, decodeInt(make([]int, 1), make([]byte, 4), F32), "F32")
	checkInvalid(t, DecodeFloat32(make([]float32, 1), make([]byte, 4), I32), "I32")
	if _, err := EncodeFloat32(nil, []float32{1}, I32); err == nil {
		t.Error("EncodeFloat32 to I32: no error")
	}
}
