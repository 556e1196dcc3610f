// Package quant quantizes float32 matrices symmetrically by round to nearest,
// per row or in groups along the row, at 2 to 8 bits per weight with
// half-precision (F16) scales, and accounts for the bits a quantized tensor
// costs. RoundGPTQ chooses the codes with the same scales by Hessian-aware
// rounding on the Gram matrix of a layer's inputs.
//
// # Convention
//
// A rows × cols matrix is cut into groups of GroupSize consecutive elements
// in row-major order, that is along the row (the input dimension of a
// linear layer); GroupSize 0 makes each row one group. When cols is a
// multiple of GroupSize every group lies within a row. When it is not, the
// groups run on across row ends (a group may hold the tail of one row and
// the head of the next) and only the last group of the matrix is shorter:
// the matrix has ceil(rows·cols/GroupSize) scales. This is the convention
// of quantizing w.reshape(-1, G), which the reference figures use; it
// keeps the cost of a scale at exactly 16/G bits per weight.
//
// With b bits the signed codes lie by default in the symmetric range
// [-Q, Q], Q = 2^(b-1) - 1 (int4: [-7, 7], int8: [-127, 127]); the most
// negative code -2^(b-1) is never used, so a group's positive and negative
// extremes are treated alike. This is the convention of the reference
// round-to-nearest baselines. A group's scale is its largest magnitude
// divided by Q,
// rounded to the nearest F16 (rounded up in the subnormal range below
// 2^-14, where F16 steps are coarse, and clamped to the largest finite F16); the
// codes are then computed with that rounded scale, code = clamp(round(x/s),
// -Q, Q) with ties to even, so that quantization and dequantization use the
// very same scale. A group of zeros has scale 0 and codes 0.
//
// Full-range schemes (Scheme.Full) use all 2^b codes, [-2^(b-1), 2^(b-1)-1],
// with a signed scale: the group's element v of largest magnitude (the
// first, on a tie) gets the scale v/-2^(b-1), so that it is represented
// exactly by the code -2^(b-1), as in llama.cpp's Q4_0 blocks. At 2 bits
// this gives four levels instead of three, at 3 bits eight instead of
// seven; the scale's sign costs nothing, F16 having one.
//
// Codes are stored in offset binary, u = code + 2^(b-1), packed into a
// little-endian bit stream over the row-major elements: element i occupies
// bits [i·b, (i+1)·b) counting from the least significant bit of byte 0.
// So int8 is one byte per weight, int4 two per byte (low nibble first) and
// int2 four per byte.
package quant

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// ScaleBits is the storage cost of one scale (an F16).
const ScaleBits = 16

// Scheme is a quantization format: Bits per code (2..8), GroupSize
// elements per scale along the row (0: one scale per row), and the code
// range.
type Scheme struct {
	Bits      int
	GroupSize int
	// Full selects full-range codes (see the package documentation); the
	// default is the symmetric range.
	Full bool
}

// MaxGroupSize bounds Scheme.GroupSize (2^24 elements per scale): a group
// longer than a tensor is one group, and the bound keeps every count
// derived from it far from overflow.
const MaxGroupSize = 1 << 24

// Validate reports, wrapping formats.ErrInvalid, a scheme outside 2..8 bits
// or with a group size outside [0, MaxGroupSize].
func (s Scheme) Validate() error {
	if s.Bits < 2 || s.Bits > 8 {
		return fmt.Errorf("quant: %w: %d bits (want 2..8)", formats.ErrInvalid, s.Bits)
	}
	if s.GroupSize < 0 || s.GroupSize > MaxGroupSize {
		return fmt.Errorf("quant: %w: group size %d outside [1, %d] (0: one group per row)", formats.ErrInvalid, s.GroupSize, MaxGroupSize)
	}
	return nil
}

// String returns "int4/g32" for groups, or "int8/row" for per-row scales,
// with "/full" appended for full-range codes.
func (s Scheme) String() string {
	g := "row"
	if s.GroupSize != 0 {
		g = fmt.Sprintf("g%d", s.GroupSize)
	}
	if s.Full {
		return fmt.Sprintf("int%d/%s/full", s.Bits, g)
	}
	return fmt.Sprintf("int%d/%s", s.Bits, g)
}

// ParseScheme reads the String form ("int4/g32", "int8/row",
// "int3/g32/full"; "int8" alone means per row).
func ParseScheme(str string) (Scheme, error) {
	bad := fmt.Errorf("quant: %w: scheme %q (want e.g. int4/g32, int8/row or int3/g32/full)", formats.ErrInvalid, str)
	str, full := strings.CutSuffix(str, "/full")
	name, group, hasGroup := strings.Cut(str, "/")
	if !strings.HasPrefix(name, "int") {
		return Scheme{}, bad
	}
	bits, err := strconv.Atoi(name[3:])
	if err != nil {
		return Scheme{}, bad
	}
	s := Scheme{Bits: bits, Full: full}
	if hasGroup && group != "row" {
		if !strings.HasPrefix(group, "g") {
			return Scheme{}, bad
		}
		if s.GroupSize, err = strconv.Atoi(group[1:]); err != nil || s.GroupSize <= 0 {
			return Scheme{}, bad
		}
	}
	if err := s.Validate(); err != nil {
		return Scheme{}, err
	}
	return s, nil
}

// MaxCode returns Q = 2^(Bits-1) - 1, the largest code magnitude.
func (s Scheme) MaxCode() int { return 1<<(s.Bits-1) - 1 }

// group returns the effective group length for rows of cols elements.
func (s Scheme) group(cols int) int {
	if s.GroupSize == 0 {
		return cols
	}
	return s.GroupSize
}

// NumGroups returns the number of scales of a rows × cols matrix:
// ceil(rows·cols/GroupSize), or rows for per-row scales.
func (s Scheme) NumGroups(rows, cols int) int {
	n := rows * cols
	if n == 0 {
		return 0
	}
	g := s.group(cols)
	k := n / g
	if n%g != 0 {
		k++
	}
	return k
}

// CodeBytes returns the length of the packed codes of rows × cols elements.
func (s Scheme) CodeBytes(rows, cols int) int {
	return (rows*cols*s.Bits + 7) / 8
}

// StorageBits returns the bits a rows × cols matrix costs in this scheme:
// its codes plus its F16 scales (the final byte's padding excluded).
func (s Scheme) StorageBits(rows, cols int) int64 {
	return int64(rows)*int64(cols)*int64(s.Bits) + int64(s.NumGroups(rows, cols))*ScaleBits
}

// BitsPerWeight returns StorageBits divided by the number of elements:
// about Bits + 16/G (exactly 4.5 for int4/g32 when rows·cols is a multiple
// of 32), or Bits + 16/cols per row.
func (s Scheme) BitsPerWeight(rows, cols int) float64 {
	if rows*cols == 0 {
		return 0
	}
	return float64(s.StorageBits(rows, cols)) / float64(rows*cols)
}
