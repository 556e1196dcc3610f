// Package gguf writes and reads GGUF version 3 files, the single-file model
// format of llama.cpp (and of ollama and the runtimes built on it).
//
// A GGUF file is a header (magic "GGUF", version, tensor and key/value
// counts), typed key/value metadata, one descriptor per tensor (name,
// dimensions innermost first, element type, offset), padding to the
// alignment (general.alignment, 32 by default), then the tensor data, each
// tensor aligned. All numbers are little-endian.
//
// Shapes in this package are given the Hugging Face way, outermost first
// ([rows, cols] for a weight matrix); the file stores them reversed, as
// ggml's ne[0] is the length of a row.
package gguf

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// Version is the GGUF version this package writes and reads.
const Version = 3

// Alignment is the alignment of the data section and of every tensor in it.
const Alignment = 32

// Type is a ggml tensor element type.
type Type uint32

// Element types written by this package (ggml's numbering).
const (
	F32  Type = 0
	F16  Type = 1
	Q8_0 Type = 8
	BF16 Type = 30
)

// BlockSize is the number of elements of one Q8_0 block.
const BlockSize = 32

// String returns ggml's name of t.
func (t Type) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// ParseType parses a type name: f32, f16, bf16 or q8_0 (any case).
func ParseType(s string) (Type, error) {
	switch s {
	case "f32", "F32":
		return F32, nil
	case "f16", "F16":
		return F16, nil
	case "bf16", "BF16":
		return BF16, nil
	case "q8_0", "Q8_0":
		return Q8_0, nil
	}
	return 0, fmt.Errorf("%w: GGUF type %q: want f32, f16, bf16 or q8_0", formats.ErrInvalid, s)
}

// RowBytes returns the bytes of a row of n elements of type t; n must be a
// multiple of BlockSize for Q8_0.
func (t Type) RowBytes(n int) int {
	switch t {
	case F32:
		return 4 * n
	case F16, BF16:
		return 2 * n
	case Q8_0:
		return n / BlockSize * (2 + BlockSize)
	}
	return 0
}

// known reports whether this package can encode t.
func (t Type) known() bool { return t == F32 || t == F16 || t == BF16 || t == Q8_0 }

// FileType is the general.file_type value of a file whose matrices are
// mostly of type t (llama.cpp's llama_ftype).
func FileType(t Type) uint32 {
	switch t {
	case F16:
		return 1
	case Q8_0:
		return 7
	case BF16:
		return 32
	}
	return 0
}

// Value types of metadata (gguf_type).
const (
	typeUint8   uint32 = 0
	typeInt8    uint32 = 1
	typeUint16  uint32 = 2
	typeInt16   uint32 = 3
	typeUint32  uint32 = 4
	typeInt32   uint32 = 5
	typeFloat32 uint32 = 6
	typeBool    uint32 = 7
	typeString  uint32 = 8
	typeArray   uint32 = 9
	typeUint64  uint32 = 10
	typeInt64   uint32 = 11
	typeFloat64 uint32 = 12
)

// KV is one metadata entry. Value is one of uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64, float64, or a slice
// of one of those (an array).
type KV struct {
	Key   string
	Value any
}

// Tensor describes one tensor of a file.
type Tensor struct {
	// Name is the GGUF tensor name, e.g. "blk.0.attn_q.weight".
	Name string
	// Shape is outermost first, e.g. [rows, cols].
	Shape []int
	// Type is the element type of the stored data.
	Type Type
}

// Elements returns the product of the shape.
func (t Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes returns the stored size of the tensor's data (without padding).
func (t Tensor) Bytes() int {
	if len(t.Shape) == 0 {
		return t.Type.RowBytes(1)
	}
	row := t.Shape[len(t.Shape)-1]
	return t.Elements() / max(row, 1) * t.Type.RowBytes(row)
}

// validate checks the descriptor's shape and type.
func (t Tensor) validate() error {
	if t.Name == "" || len(t.Name) >= 64 {
		return fmt.Errorf("%w: GGUF tensor name %q must have 1 to 63 bytes", formats.ErrInvalid, t.Name)
	}
	if !t.Type.known() {
		return fmt.Errorf("%w: tensor %q: unsupported GGUF type %v", formats.ErrInvalid, t.Name, t.Type)
	}
	if len(t.Shape) < 1 || len(t.Shape) > 4 {
		return fmt.Errorf("%w: tensor %q: %d dimensions, GGUF holds 1 to 4", formats.ErrInvalid, t.Name, len(t.Shape))
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 1 {
			return fmt.Errorf("%w: tensor %q: shape %v", formats.ErrInvalid, t.Name, t.Shape)
		}
		n *= int64(d)
		if n > 1<<40 {
			return fmt.Errorf("%w: tensor %q: shape %v too large", formats.ErrInvalid, t.Name, t.Shape)
		}
	}
	if t.Type == Q8_0 && t.Shape[len(t.Shape)-1]%BlockSize != 0 {
		return fmt.Errorf("%w: tensor %q: rows of %d elements are not whole Q8_0 blocks of %d", formats.ErrInvalid, t.Name, t.Shape[len(t.Shape)-1], BlockSize)
	}
	return nil
}

func align(n int64) int64 { return (n + Alignment - 1) / Alignment * Alignment }
