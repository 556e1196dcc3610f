package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Writer streams a GGUF file: the header, metadata and tensor descriptors
// are written up front from the declared tensors, then the tensors' data
// one at a time in declaration order, so memory holds at most one tensor.
// Output goes to a temporary file in the destination directory that Commit
// renames into place; the first failed write, a failed Commit, or Abort
// removes it, so a partial file never appears under the final name.
type Writer struct {
	path    string
	out     *formats.AtomicFile
	tensors []Tensor
	next    int
	scratch []byte
}

// Create starts writing a GGUF file at path with the metadata kvs (in that
// order) and the given tensors (in that order). Keys and tensor names must
// be unique.
func Create(path string, kvs []KV, tensors []Tensor) (*Writer, error) {
	head, err := encodeHeader(kvs, tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := formats.CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, out: out, tensors: tensors}
	if _, err := w.out.Write(head); err != nil {
		return nil, w.fail(fmt.Errorf("%s: writing header: %w", path, err))
	}
	return w, nil
}

// encodeHeader encodes everything before the first tensor's data, padded to
// Alignment.
func encodeHeader(kvs []KV, tensors []Tensor) ([]byte, error) {
	b := []byte(Magic)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(kvs)))
	seen := map[string]bool{}
	for _, kv := range kvs {
		if kv.Key == "" || seen[kv.Key] {
			return nil, fmt.Errorf("%w: GGUF key %q empty or repeated", formats.ErrInvalid, kv.Key)
		}
		seen[kv.Key] = true
		b = appendString(b, kv.Key)
		var err error
		if b, err = appendValue(b, kv.Value, true); err != nil {
			return nil, fmt.Errorf("GGUF key %q: %w", kv.Key, err)
		}
	}
	seen = map[string]bool{}
	var off int64
	for _, t := range tensors {
		if err := t.validate(); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: GGUF tensor %q declared twice", formats.ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		b = appendString(b, t.Name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.Shape)))
		for i := len(t.Shape) - 1; i >= 0; i-- {
			b = binary.LittleEndian.AppendUint64(b, uint64(t.Shape[i]))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(t.Type))
		b = binary.LittleEndian.AppendUint64(b, uint64(off))
		off = align(off + int64(t.Bytes()))
	}
	for int64(len(b))%Alignment != 0 {
		b = append(b, 0)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendValue appends the type tag (when tagged) and the encoding of v.
func appendValue(b []byte, v any, tagged bool) ([]byte, error) {
	le := binary.LittleEndian
	tag := func(t uint32) {
		if tagged {
			b = le.AppendUint32(b, t)
		}
	}
	switch x := v.(type) {
	case uint8:
		tag(typeUint8)
		b = append(b, x)
	case int8:
		tag(typeInt8)
		b = append(b, byte(x))
	case uint16:
		tag(typeUint16)
		b = le.AppendUint16(b, x)
	case int16:
		tag(typeInt16)
		b = le.AppendUint16(b, uint16(x))
	case uint32:
		tag(typeUint32)
		b = le.AppendUint32(b, x)
	case int32:
		tag(typeInt32)
		b = le.AppendUint32(b, uint32(x))
	case float32:
		tag(typeFloat32)
		b = le.AppendUint32(b, math.Float32bits(x))
	case bool:
		tag(typeBool)
		if x {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case string:
		tag(typeString)
		b = appendString(b, x)
	case uint64:
		tag(typeUint64)
		b = le.AppendUint64(b, x)
	case int64:
		tag(typeInt64)
		b = le.AppendUint64(b, uint64(x))
	case float64:
		tag(typeFloat64)
		b = le.AppendUint64(b, math.Float64bits(x))
	case []string:
		return appendArray(b, tagged, typeString, x)
	case []float32:
		return appendArray(b, tagged, typeFloat32, x)
	case []int32:
		return appendArray(b, tagged, typeInt32, x)
	case []uint32:
		return appendArray(b, tagged, typeUint32, x)
	case []uint8:
		return appendArray(b, tagged, typeUint8, x)
	default:
		return nil, fmt.Errorf("%w: unsupported value type %T", formats.ErrInvalid, v)
	}
	return b, nil
}

func appendArray[T any](b []byte, tagged bool, elem uint32, xs []T) ([]byte, error) {
	if !tagged {
		return nil, fmt.Errorf("%w: nested arrays are not supported", formats.ErrInvalid)
	}
	b = binary.LittleEndian.AppendUint32(b, typeArray)
	b = binary.LittleEndian.AppendUint32(b, elem)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(xs)))
	var err error
	for _, x := range xs {
		if b, err = appendValue(b, any(x), false); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// WriteFloat32 encodes data as the next declared tensor's type and writes
// it. name must be that tensor's name and data hold exactly its elements,
// row-major. A value that is not finite, or that the type cannot hold
// (beyond ±65504 for F16), is refused with an error naming the tensor.
func (w *Writer) WriteFloat32(name string, data []float32) error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.next >= len(w.tensors) || w.tensors[w.next].Name != name {
		want := "none"
		if w.next < len(w.tensors) {
			want = fmt.Sprintf("%q", w.tensors[w.next].Name)
		}
		return w.fail(fmt.Errorf("%s: tensor %q written out of order (next declared: %s)", w.path, name, want))
	}
	t := w.tensors[w.next]
	if len(data) != t.Elements() {
		return w.fail(fmt.Errorf("%s: tensor %q: %d values for shape %v", w.path, name, len(data), t.Shape))
	}
	n := t.Bytes()
	if cap(w.scratch) < int(align(int64(n))) {
		w.scratch = make([]byte, align(int64(n)))
	}
	buf := w.scratch[:align(int64(n))]
	if err := Encode(buf[:n], data, t.Type, t.Shape[len(t.Shape)-1]); err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: %w", w.path, name, err))
	}
	clear(buf[n:])
	if w.next == len(w.tensors)-1 {
		buf = buf[:n] // no padding after the last tensor
	}
	if _, err := w.out.Write(buf); err != nil {
		return w.fail(fmt.Errorf("%s: %w", w.path, err))
	}
	w.next++
	return nil
}

// Encode writes data (rows of rowLen elements) into dst as type t; dst must
// have t.RowBytes(rowLen) bytes per row.
func Encode(dst []byte, data []float32, t Type, rowLen int) error {
	le := binary.LittleEndian
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: non-finite value %v at element %d", formats.ErrInvalid, v, i)
		}
	}
	switch t {
	case F32:
		for i, v := range data {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range data {
			h := formats.Float32ToF16(v)
			if h&0x7c00 == 0x7c00 {
				return fmt.Errorf("%w: value %v at element %d is beyond the F16 range", formats.ErrInvalid, v, i)
			}
			le.PutUint16(dst[2*i:], h)
		}
	case BF16:
		for i, v := range data {
			h := formats.Float32ToBF16(v)
			if h&0x7f80 == 0x7f80 {
				return fmt.Errorf("%w: value %v at element %d is beyond the BF16 range", formats.ErrInvalid, v, i)
			}
			le.PutUint16(dst[2*i:], h)
		}
	case Q8_0:
		if rowLen%BlockSize != 0 {
			return fmt.Errorf("%w: rows of %d elements are not whole Q8_0 blocks", formats.ErrInvalid, rowLen)
		}
		for b := 0; b*BlockSize < len(data); b++ {
			quantizeQ8_0(dst[b*(2+BlockSize):(b+1)*(2+BlockSize)], data[b*BlockSize:(b+1)*BlockSize])
		}
	default:
		return fmt.Errorf("%w: unsupported GGUF type %v", formats.ErrInvalid, t)
	}
	return nil
}

// quantizeQ8_0 encodes one block of 32 values as ggml's block_q8_0: the
// scale d = max|x|/127 as F16, then the 32 codes round(x/d) as int8 (ties
// away from zero), computed with the float32 scale, as ggml's
// quantize_row_q8_0_ref does.
func quantizeQ8_0(dst []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, formats.Float32ToF16(d))
	for i, v := range x {
		dst[2+i] = byte(int8(math.Round(float64(v * id))))
	}
}

// fail records the first error and removes the temporary file.
func (w *Writer) fail(err error) error { return w.out.Fail(err) }

// Commit flushes, syncs and renames the file into place. It fails, removing
// the temporary file, if a write failed or a declared tensor is missing.
func (w *Writer) Commit() error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.next != len(w.tensors) {
		return w.fail(fmt.Errorf("%s: only %d of %d tensors written (next: %q)", w.path, w.next, len(w.tensors), w.tensors[w.next].Name))
	}
	return w.out.Commit()
}

// Abort discards the partial output. It is safe after Commit and more than
// once.
func (w *Writer) Abort() { w.out.Abort() }
