// Package formats reads and writes model checkpoints: safetensors files
// (single or sharded, read lazily), Hugging Face config.json, and a streaming
// safetensors writer.
//
// Tensor data is never read until asked for: Open parses and validates the
// header only, and each Read call issues positioned reads (io.ReaderAt) for
// the bytes of one tensor. Every error names the file and, where there is
// one, the tensor.
package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"sync"

	"github.com/nlpodyssey/safetensors"
)

// ErrInvalid marks errors caused by malformed or inconsistent input files, as
// opposed to I/O failures. Test with errors.Is.
var ErrInvalid = errors.New("invalid input")

// MaxHeaderSize bounds the JSON header of a safetensors file (100 MB, the
// bound used by the reference implementation).
const MaxHeaderSize = 100_000_000

// MaxTensors bounds the tensors one safetensors file may declare (checked
// before the header is parsed). Real checkpoints hold a few thousand per
// file.
const MaxTensors = 1 << 16

// maxElements bounds the element count of one tensor (2^48), far above any
// real checkpoint and low enough that byte counts cannot overflow.
const maxElements = 1 << 48

// TensorInfo describes one tensor stored in a safetensors file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Offset is the absolute byte offset of the tensor data in File.
	Offset int64
	// Size is the byte length of the data.
	Size int64
	// File is the path of the file holding the tensor.
	File string
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file whose tensors are read on demand.
// Its methods are safe for concurrent use.
type File struct {
	path     string
	r        io.ReaderAt
	closer   io.Closer
	size     int64
	dataOff  int64
	metadata map[string]string
	tensors  map[string]*TensorInfo
	order    []string
	// chunks recycles the byte buffers of ReadFloat32At.
	chunks sync.Pool
}

// Open opens and validates the safetensors file at path. Tensor data is read
// lazily by the Read methods.
func Open(path string) (*File, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sf, err := NewFile(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

// NewFile parses the safetensors header of r, which holds size bytes, and
// validates every tensor entry: the header must be a JSON object of at most
// MaxHeaderSize bytes with no repeated name or key; each tensor needs a known
// dtype, a shape of at most 2^48 elements, offsets in order that lie inside
// the data section and span exactly dtype size × elements bytes, and no two
// tensors may share a byte. Gaps between tensors and trailing bytes are
// allowed. Every error names path (used in messages only) and, where there is
// one, the tensor; malformed input gives errors wrapping ErrInvalid.
func NewFile(path string, r io.ReaderAt, size int64) (*File, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrInvalid, fmt.Sprintf(format, a...))
	}
	header, err := readHeader(path, r, size, bad)
	if err != nil {
		return nil, err
	}
	var md safetensors.Metadata
	if err := json.Unmarshal(header, &md); err != nil {
		return nil, bad("header is not valid safetensors JSON: %.120v", err)
	}
	sf := &File{
		path:     path,
		r:        r,
		size:     size,
		dataOff:  8 + int64(len(header)),
		metadata: md.Metadata(),
		tensors:  map[string]*TensorInfo{},
	}
	dataLen := uint64(size - sf.dataOff)
	for name, ti := range md.Tensors() {
		info, err := sf.tensorInfo(name, ti, dataLen, bad)
		if err != nil {
			return nil, err
		}
		sf.tensors[name] = info
		sf.order = append(sf.order, name)
	}
	if err := sf.sortAndCheckOverlap(bad); err != nil {
		return nil, err
	}
	return sf, nil
}

// readHeader reads and structurally checks the JSON header of a file of
// size bytes.
func readHeader(path string, r io.ReaderAt, size int64, bad func(string, ...any) error) ([]byte, error) {
	if size < 8 {
		return nil, bad("file is %d bytes, too short for a safetensors header", size)
	}
	var lenBuf [8]byte
	if err := readFullAt(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, bad("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, bad("header length %d runs past the end of the file (%d bytes): file truncated?", n, size)
	}
	header := make([]byte, n)
	if err := readFullAt(r, header, 8); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	// A cheap count before any JSON is parsed: a header declaring a
	// million tensors is rejected at once instead of after parsing it.
	if n := bytes.Count(header, []byte(`"data_offsets"`)); n > MaxTensors {
		return nil, bad("header declares %d tensors, more than the %d a file may hold", n, MaxTensors)
	}
	if err := checkHeaderStructure(header); err != nil {
		return nil, bad("%v", err)
	}
	return header, nil
}

// tensorInfo checks one header entry against a data section of dataLen
// bytes: a shape that does not overflow, and offsets in order, inside the
// data and spanning exactly the tensor's bytes.
func (sf *File) tensorInfo(name string, ti *safetensors.TensorInfo, dataLen uint64, bad func(string, ...any) error) (*TensorInfo, error) {
	shape := make([]int, len(ti.Shape))
	elems := uint64(1)
	for i, d := range ti.Shape {
		// Bounding each dimension as well as the running product keeps
		// every dimension representable as int even after a zero.
		hi, lo := bits.Mul64(elems, d)
		if d > maxElements || hi != 0 || lo > maxElements {
			return nil, bad("tensor %q: shape %v overflows", name, ti.Shape)
		}
		elems = lo
		shape[i] = int(d)
	}
	want := elems * ti.DType.Size()
	s, e := ti.DataOffsets[0], ti.DataOffsets[1]
	if e < s {
		return nil, bad("tensor %q: data offsets [%d, %d) are reversed", name, s, e)
	}
	if e > dataLen {
		return nil, bad("tensor %q: data offsets [%d, %d) run past the end of the data (%d bytes): file truncated?", name, s, e, dataLen)
	}
	if e-s != want {
		return nil, bad("tensor %q: dtype %s × shape %v needs %d bytes but offsets [%d, %d) hold %d", name, ti.DType, ti.Shape, want, s, e, e-s)
	}
	return &TensorInfo{
		Name: name, DType: ti.DType, Shape: shape,
		Offset: sf.dataOff + int64(s), Size: int64(e - s), File: sf.path,
	}, nil
}

// sortAndCheckOverlap puts the tensors in file order and fails when two
// share a byte.
func (sf *File) sortAndCheckOverlap(bad func(string, ...any) error) error {
	// Order by start, then end, so an empty tensor sorts before a tensor
	// starting at the same offset, as in a file written contiguously.
	sort.Slice(sf.order, func(i, j int) bool {
		a, b := sf.tensors[sf.order[i]], sf.tensors[sf.order[j]]
		if a.Offset != b.Offset {
			return a.Offset < b.Offset
		}
		if a.Size != b.Size {
			return a.Size < b.Size
		}
		return a.Name < b.Name
	})
	// Comparing each tensor with the one ending last before it finds any
	// overlap, whatever the empty tensors in between.
	var last *TensorInfo
	for _, name := range sf.order {
		cur := sf.tensors[name]
		if last != nil && cur.Offset < last.Offset+last.Size {
			return bad("tensors %q (bytes [%d, %d)) and %q (bytes [%d, %d)) overlap",
				last.Name, last.Offset-sf.dataOff, last.Offset-sf.dataOff+last.Size,
				cur.Name, cur.Offset-sf.dataOff, cur.Offset-sf.dataOff+cur.Size)
		}
		if last == nil || cur.Offset+cur.Size > last.Offset+last.Size {
			last = cur
		}
	}
	return nil
}

// checkHeaderStructure checks the shape of the header document before it is
// decoded: an object whose entries are objects (__metadata__ may be null),
// with no tensor name listed twice and no key repeated inside an entry,
// which encoding/json would silently resolve by keeping the last.
func checkHeaderStructure(header []byte) error {
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("header is not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("header is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("header is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		what := fmt.Sprintf("tensor %q", key)
		if key == "__metadata__" {
			what = "__metadata__"
		}
		if seen[key] {
			return fmt.Errorf("%.80s is listed twice", what)
		}
		seen[key] = true
		var entry json.RawMessage
		if err := dec.Decode(&entry); err != nil {
			return fmt.Errorf("header is not valid JSON: %v", err)
		}
		if entry[0] != '{' && (key != "__metadata__" || string(entry) != "null") {
			return fmt.Errorf("%s: entry %.40s is not a JSON object", what, entry)
		}
		if dup, err := duplicateKey(entry); err != nil {
			return fmt.Errorf("%s: not valid JSON: %v", what, err)
		} else if dup != "" {
			return fmt.Errorf("%s: key %.60q is listed twice", what, dup)
		}
		if key == "__metadata__" && entry[0] == '{' {
			if err := checkMetadataStrings(entry); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMetadataStrings checks that every value of the __metadata__ object
// raw is a string, as the format requires, and names the first key whose
// value is not.
func checkMetadataStrings(raw json.RawMessage) error {
	var md map[string]json.RawMessage
	if err := json.Unmarshal(raw, &md); err != nil {
		return fmt.Errorf("__metadata__: not valid JSON: %.120v", err)
	}
	for k, v := range md {
		if len(v) == 0 || v[0] != '"' {
			return fmt.Errorf("__metadata__: value of %.60q is %.20s…, not a string", k, v)
		}
	}
	return nil
}

// duplicateKey returns a key that appears twice in the JSON object raw, or ""
// when there is none or raw is not an object.
func duplicateKey(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return "", nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		key, _ := tok.(string)
		if seen[key] {
			return key, nil
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", nil
}

// readFullAt fills buf from r at off. A reader may report io.EOF together
// with a full buffer at the end of its data; that is not an error here.
func readFullAt(r io.ReaderAt, buf []byte, off int64) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Metadata returns the free-form __metadata__ map of the header (may be nil).
func (f *File) Metadata() map[string]string { return f.metadata }

// Names returns the tensor names in storage order.
func (f *File) Names() []string { return append([]string(nil), f.order...) }

// Info returns the description of the named tensor.
func (f *File) Info(name string) (*TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Close releases the underlying file, if Open opened it.
func (f *File) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// ReadRaw returns the raw little-endian bytes of the named tensor.
func (f *File) ReadRaw(name string) ([]byte, *TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w: no tensor %q", f.path, ErrInvalid, name)
	}
	buf := make([]byte, t.Size)
	if err := readFullAt(f.r, buf, t.Offset); err != nil {
		return nil, nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return buf, t, nil
}

// ReadFloat32 reads the named floating-point tensor converted to float32.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	raw, t, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	if err := DecodeFloat32(out, raw, t.DType); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	if err := CheckFinite(out); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return out, nil
}

// ReadFloat64 reads the named floating-point tensor converted to float64.
func (f *File) ReadFloat64(name string) ([]float64, error) {
	raw, t, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	out := make([]float64, t.NumElements())
	if err := decodeFloat64(out, raw, t.DType); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	if err := CheckFinite(out); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return out, nil
}

// ReadInts reads the named integer tensor converted to int.
func (f *File) ReadInts(name string) ([]int, error) {
	raw, t, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	out := make([]int, t.NumElements())
	if err := decodeInt(out, raw, t.DType); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return out, nil
}
