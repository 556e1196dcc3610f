package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Limits of what Open accepts, so a hostile header cannot make it allocate
// without bound.
const (
	maxKVs      = 1 << 16
	maxTensors  = 1 << 20
	maxString   = 1 << 20
	maxArrayLen = 1 << 24
)

// File is a GGUF file opened for reading: its metadata and tensor
// descriptors, read at Open, and its data, read on demand.
type File struct {
	f *os.File
	// KV holds the metadata by key; arrays are slices ([]string,
	// []float32, []int32, []uint32, []uint8, …).
	KV map[string]any
	// Keys lists the metadata keys in file order.
	Keys []string
	// Tensors lists the tensor descriptors in file order.
	Tensors []TensorInfo
	byName  map[string]int
	data    int64
}

// TensorInfo is a tensor descriptor as stored.
type TensorInfo struct {
	Tensor
	// Offset is the position of the data from the start of the data section.
	Offset int64
}

// Open reads the header, metadata and tensor descriptors of the GGUF file
// at path. Malformed input gives an error wrapping formats.ErrInvalid.
func Open(path string) (*File, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	g := &File{f: f, KV: map[string]any{}, byName: map[string]int{}}
	r := &reader{r: bufio.NewReader(f)}
	if err := g.readHeader(r, st.Size()); err != nil {
		f.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated header", formats.ErrInvalid)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Close closes the file.
func (g *File) Close() error { return g.f.Close() }

func (g *File) readHeader(r *reader, size int64) error {
	magic := r.bytes(4)
	if r.err == nil && string(magic) != Magic {
		return fmt.Errorf("%w: not a GGUF file (magic %q)", formats.ErrInvalid, magic)
	}
	if v := r.u32(); r.err == nil && v != Version {
		return fmt.Errorf("%w: GGUF version %d, want %d", formats.ErrInvalid, v, Version)
	}
	nt, nkv := r.u64(), r.u64()
	if r.err != nil {
		return r.err
	}
	if nt > maxTensors || nkv > maxKVs {
		return fmt.Errorf("%w: %d tensors and %d keys exceed the limits", formats.ErrInvalid, nt, nkv)
	}
	for range nkv {
		k := r.str()
		typ := r.u32()
		v, err := r.value(typ, true)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if r.err != nil {
			return r.err
		}
		if _, dup := g.KV[k]; dup {
			return fmt.Errorf("%w: key %q repeated", formats.ErrInvalid, k)
		}
		g.KV[k] = v
		g.Keys = append(g.Keys, k)
	}
	for range nt {
		var t TensorInfo
		t.Name = r.str()
		nd := r.u32()
		if r.err == nil && (nd < 1 || nd > 4) {
			return fmt.Errorf("%w: tensor %q has %d dimensions", formats.ErrInvalid, t.Name, nd)
		}
		t.Shape = make([]int, nd)
		for i := int(nd) - 1; i >= 0; i-- {
			d := r.u64()
			if d > 1<<40 {
				return fmt.Errorf("%w: tensor %q: dimension %d", formats.ErrInvalid, t.Name, d)
			}
			t.Shape[i] = int(d)
		}
		t.Type = Type(r.u32())
		off := r.u64()
		if r.err != nil {
			return r.err
		}
		if err := t.validate(); err != nil {
			return err
		}
		if off > 1<<50 {
			return fmt.Errorf("%w: tensor %q: offset %d", formats.ErrInvalid, t.Name, off)
		}
		t.Offset = int64(off)
		if _, dup := g.byName[t.Name]; dup {
			return fmt.Errorf("%w: tensor %q repeated", formats.ErrInvalid, t.Name)
		}
		g.byName[t.Name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, t)
	}
	if r.err != nil {
		return r.err
	}
	al := int64(Alignment)
	if v, ok := g.KV["general.alignment"].(uint32); ok {
		if v == 0 || v&(v-1) != 0 {
			return fmt.Errorf("%w: general.alignment %d is not a power of two", formats.ErrInvalid, v)
		}
		al = int64(v)
	}
	g.data = (r.n + al - 1) / al * al
	for _, t := range g.Tensors {
		if end := g.data + t.Offset + int64(t.Bytes()); end > size {
			return fmt.Errorf("%w: tensor %q ends at byte %d of a %d-byte file", formats.ErrInvalid, t.Name, end, size)
		}
	}
	return nil
}

// Tensor returns the descriptor of the named tensor.
func (g *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := g.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return g.Tensors[i], true
}

// ReadFloat32 reads and decodes the named tensor.
func (g *File) ReadFloat32(name string) ([]float32, error) {
	t, ok := g.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: no tensor %q", formats.ErrInvalid, name)
	}
	raw := make([]byte, t.Bytes())
	if _, err := g.f.ReadAt(raw, g.data+t.Offset); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return Decode(raw, t.Type, t.Elements()), nil
}

// Decode decodes n elements of type t from raw.
func Decode(raw []byte, t Type, n int) []float32 {
	le := binary.LittleEndian
	out := make([]float32, n)
	switch t {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = formats.F16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = formats.BF16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case Q8_0:
		for b := 0; b*BlockSize < n; b++ {
			blk := raw[b*(2+BlockSize):]
			d := formats.F16ToFloat32(le.Uint16(blk))
			for i := range BlockSize {
				out[b*BlockSize+i] = d * float32(int8(blk[2+i]))
			}
		}
	}
	return out
}

// reader decodes little-endian values, keeping the first error and the
// count of bytes read.
type reader struct {
	r   *bufio.Reader
	n   int64
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	b := make([]byte, n)
	_, r.err = io.ReadFull(r.r, b)
	r.n += int64(n)
	return b
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if r.err != nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if r.err != nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > maxString {
		r.err = fmt.Errorf("%w: string of %d bytes", formats.ErrInvalid, n)
		return ""
	}
	return string(r.bytes(int(n)))
}

// value reads one value of type typ; arrays only at the top level.
func (r *reader) value(typ uint32, top bool) (any, error) {
	switch typ {
	case typeUint8:
		b := r.bytes(1)
		if r.err != nil {
			return nil, r.err
		}
		return b[0], nil
	case typeInt8:
		b := r.bytes(1)
		if r.err != nil {
			return nil, r.err
		}
		return int8(b[0]), nil
	case typeUint16, typeInt16:
		b := r.bytes(2)
		if r.err != nil {
			return nil, r.err
		}
		if typ == typeInt16 {
			return int16(binary.LittleEndian.Uint16(b)), nil
		}
		return binary.LittleEndian.Uint16(b), nil
	case typeUint32:
		return r.u32(), r.err
	case typeInt32:
		return int32(r.u32()), r.err
	case typeFloat32:
		return math.Float32frombits(r.u32()), r.err
	case typeBool:
		b := r.bytes(1)
		if r.err != nil {
			return nil, r.err
		}
		return b[0] != 0, nil
	case typeString:
		return r.str(), r.err
	case typeUint64:
		return r.u64(), r.err
	case typeInt64:
		return int64(r.u64()), r.err
	case typeFloat64:
		return math.Float64frombits(r.u64()), r.err
	case typeArray:
		if !top {
			return nil, fmt.Errorf("%w: nested array", formats.ErrInvalid)
		}
		elem, n := r.u32(), r.u64()
		if r.err != nil {
			return nil, r.err
		}
		if n > maxArrayLen {
			return nil, fmt.Errorf("%w: array of %d elements", formats.ErrInvalid, n)
		}
		return r.array(elem, int(n))
	}
	return nil, fmt.Errorf("%w: value type %d", formats.ErrInvalid, typ)
}

func (r *reader) array(elem uint32, n int) (any, error) {
	switch elem {
	case typeString:
		return readArray[string](r, elem, n)
	case typeFloat32:
		return readArray[float32](r, elem, n)
	case typeInt32:
		return readArray[int32](r, elem, n)
	case typeUint32:
		return readArray[uint32](r, elem, n)
	case typeUint8:
		return readArray[uint8](r, elem, n)
	}
	// Other element types are read as []any.
	return readArray[any](r, elem, n)
}

func readArray[T any](r *reader, elem uint32, n int) ([]T, error) {
	out := make([]T, 0, min(n, 1<<16))
	for range n {
		v, err := r.value(elem, false)
		if err != nil {
			return nil, err
		}
		x, ok := v.(T)
		if !ok {
			return nil, fmt.Errorf("%w: array element %T", formats.ErrInvalid, v)
		}
		out = append(out, x)
	}
	return out, nil
}
