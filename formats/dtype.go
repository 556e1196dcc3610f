package formats

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/nlpodyssey/safetensors"
)

// DType is a safetensors element type. It is the type of
// github.com/nlpodyssey/safetensors, so values can be passed to that package
// unchanged.
type DType = safetensors.DType

// Element types this package reads as floating point.
const (
	F16  = safetensors.F16
	BF16 = safetensors.BF16
	F32  = safetensors.F32
	F64  = safetensors.F64
	I32  = safetensors.I32
	I64  = safetensors.I64
	// U8 holds packed quantization codes.
	U8 = safetensors.U8
)

// ParseDType parses a user-facing dtype name ("f32", "F16", "bf16", ...).
func ParseDType(s string) (DType, error) {
	d, err := safetensors.ParseDType(strings.ToUpper(s))
	if err != nil {
		return 0, fmt.Errorf("%w: unknown dtype %q (want f32, f16 or bf16)", ErrInvalid, s)
	}
	return d, nil
}

// IsFloat reports whether d is a floating-point type this package converts.
func IsFloat(d DType) bool {
	switch d {
	case F16, BF16, F32, F64:
		return true
	}
	return false
}

// IsInt reports whether d is a signed or unsigned integer type this package
// converts to int.
func IsInt(d DType) bool {
	switch d {
	case safetensors.I8, safetensors.U8, safetensors.I16, safetensors.U16, I32, safetensors.U32, I64, safetensors.U64, safetensors.BOOL:
		return true
	}
	return false
}

// BF16ToFloat32 widens a bfloat16 bit pattern; the conversion is exact.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 rounds f to the nearest bfloat16, ties to even. NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40 // quiet NaN, keep sign
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToFloat32 widens an IEEE 754 half-precision bit pattern; the conversion
// is exact, subnormals included.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = man * 2^-24.
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			return -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// Float32ToF16 rounds f to the nearest half-precision value, ties to even;
// values beyond the half range become ±Inf, NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): shift the full mantissa into place.
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(half)
}

// DecodeFloat32 converts little-endian raw bytes of dtype d into dst; raw
// must hold exactly len(dst) elements.
func DecodeFloat32(dst []float32, raw []byte, d DType) error {
	if IsFloat(d) && uint64(len(raw)) != uint64(len(dst))*d.Size() {
		return fmt.Errorf("%w: %d bytes of %s for %d values", ErrInvalid, len(raw), d, len(dst))
	}
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return fmt.Errorf("%w: dtype %s is not a floating-point type", ErrInvalid, d)
	}
	return nil
}

// decodeFloat64 converts little-endian raw bytes of dtype d into dst.
func decodeFloat64(dst []float64, raw []byte, d DType) error {
	if d == F64 {
		for i := range dst {
			dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return nil
	}
	tmp := make([]float32, len(dst))
	if err := DecodeFloat32(tmp, raw, d); err != nil {
		return err
	}
	for i, v := range tmp {
		dst[i] = float64(v)
	}
	return nil
}

// decodeInt converts little-endian raw integer bytes of dtype d into dst.
func decodeInt(dst []int, raw []byte, d DType) error {
	switch d {
	case safetensors.BOOL, safetensors.U8:
		for i := range dst {
			dst[i] = int(raw[i])
		}
	case safetensors.I8:
		for i := range dst {
			dst[i] = int(int8(raw[i]))
		}
	case safetensors.I16:
		for i := range dst {
			dst[i] = int(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case safetensors.U16:
		for i := range dst {
			dst[i] = int(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = int(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case safetensors.U32:
		for i := range dst {
			dst[i] = int(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case I64, safetensors.U64:
		for i := range dst {
			dst[i] = int(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return fmt.Errorf("%w: dtype %s is not an integer type", ErrInvalid, d)
	}
	return nil
}

// CheckFinite returns an error wrapping ErrInvalid that gives the index of
// the first NaN or infinity in data; nil when every value is finite.
func CheckFinite[T float32 | float64](data []T) error {
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: non-finite value %v at element %d", ErrInvalid, v, i)
		}
	}
	return nil
}

// MaxF16 is the largest finite half-precision value.
const MaxF16 = 65504

// checkEncodable refuses values that dtype d cannot hold: NaN and infinities
// for every dtype, and for F16 finite values beyond ±MaxF16, which would be
// stored as infinities. The error names the element and a dtype that fits.
func checkEncodable(src []float32, d DType) error {
	if err := CheckFinite(src); err != nil {
		return err
	}
	if d != F16 {
		return nil
	}
	for i, v := range src {
		// Values that round to MaxF16 are representable; beyond the
		// rounding midpoint to the next power of two they overflow.
		if math.Abs(float64(v)) >= 65520 {
			return fmt.Errorf("%w: value %g at element %d overflows %s (largest %d); store it as BF16 or F32", ErrInvalid, v, i, F16, MaxF16)
		}
	}
	return nil
}

// EncodeFloat32 converts src to little-endian bytes of dtype d, appending to
// dst. It refuses non-finite values and values that overflow d (see
// checkEncodable), so a written file never holds an infinity it was not
// given.
func EncodeFloat32(dst []byte, src []float32, d DType) ([]byte, error) {
	if err := checkEncodable(src, d); err != nil {
		return dst, err
	}
	switch d {
	case F32:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, Float32ToF16(v))
		}
	case BF16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, Float32ToBF16(v))
		}
	case F64:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(float64(v)))
		}
	default:
		return dst, fmt.Errorf("%w: cannot write float data as %s", ErrInvalid, d)
	}
	return dst, nil
}
