package formats

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// TensorSpec declares one tensor of a file before it is written.
type TensorSpec struct {
	Name  string
	DType DType
	Shape []int
}

func (s TensorSpec) numElements() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Writer streams a safetensors file: the header is computed from the
// declared tensors up front, then the tensors are written one at a time in
// declaration order, so memory holds at most one tensor. Output goes to a
// temporary file in the destination directory that Commit renames into place;
// Abort (or a failed Commit) removes it, so a partial file never appears
// under the final name.
type Writer struct {
	path    string
	tmp     *os.File
	buf     *bufio.Writer
	specs   []TensorSpec
	next    int
	err     error
	closed  bool
	scratch []byte
}

// Create starts writing a safetensors file at path holding the given tensors,
// in that order, with metadata as its __metadata__ map.
func Create(path string, metadata map[string]string, specs []TensorSpec) (*Writer, error) {
	header, err := buildHeader(metadata, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating output: %w", err)
	}
	w := &Writer{path: path, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20), specs: specs}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	w.buf.Write(n[:])
	if _, err := w.buf.Write(header); err != nil {
		w.Abort()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// buildHeader encodes the JSON header, padded with spaces to a multiple of 8
// bytes so tensor data is aligned.
func buildHeader(metadata map[string]string, specs []TensorSpec) ([]byte, error) {
	seen := map[string]bool{}
	var off uint64
	// Build the object by hand to keep declaration order in the file.
	out := []byte{'{'}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		md := map[string]string{}
		for _, k := range keys {
			md[k] = metadata[k]
		}
		b, err := json.Marshal(md)
		if err != nil {
			return nil, err
		}
		out = append(out, `"__metadata__":`...)
		out = append(out, b...)
	}
	for _, s := range specs {
		if seen[s.Name] {
			return nil, fmt.Errorf("%w: tensor %q declared twice", ErrInvalid, s.Name)
		}
		if s.Name == "__metadata__" {
			return nil, fmt.Errorf("%w: reserved tensor name %q", ErrInvalid, s.Name)
		}
		seen[s.Name] = true
		size := uint64(s.numElements()) * s.DType.Size()
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(s.Name)
		out = append(out, name...)
		out = append(out, `:{"dtype":"`...)
		out = append(out, s.DType.String()...)
		out = append(out, `","shape":[`...)
		for i, d := range s.Shape {
			if i > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendInt(out, int64(d), 10)
		}
		out = append(out, `],"data_offsets":[`...)
		out = strconv.AppendUint(out, off, 10)
		out = append(out, ',')
		off += size
		out = strconv.AppendUint(out, off, 10)
		out = append(out, "]}"...)
	}
	out = append(out, '}')
	for len(out)%8 != 0 {
		out = append(out, ' ')
	}
	return out, nil
}

func (w *Writer) expect(name string, elems int) (TensorSpec, error) {
	if w.err != nil {
		return TensorSpec{}, w.err
	}
	if w.next >= len(w.specs) {
		return TensorSpec{}, fmt.Errorf("%s: tensor %q was not declared", w.path, name)
	}
	s := w.specs[w.next]
	if s.Name != name {
		return s, fmt.Errorf("%s: tensor %q written out of order (expected %q)", w.path, name, s.Name)
	}
	if s.numElements() != elems {
		return s, fmt.Errorf("%s: tensor %q: got %d elements, shape %v needs %d", w.path, name, elems, s.Shape, s.numElements())
	}
	return s, nil
}

// WriteFloat32 writes the next declared tensor, converting data to its dtype.
func (w *Writer) WriteFloat32(name string, data []float32) error {
	s, err := w.expect(name, len(data))
	if err != nil {
		return w.fail(err)
	}
	w.scratch, err = encodeFloat32(w.scratch[:0], data, s.DType)
	if err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: %w", w.path, name, err))
	}
	return w.writeBytes(name, w.scratch)
}

// WriteInt32 writes the next declared tensor, which must have dtype I32.
func (w *Writer) WriteInt32(name string, data []int32) error {
	s, err := w.expect(name, len(data))
	if err != nil {
		return w.fail(err)
	}
	if s.DType != I32 {
		return w.fail(fmt.Errorf("%s: tensor %q declared %s, written as I32", w.path, name, s.DType))
	}
	w.scratch = w.scratch[:0]
	for _, v := range data {
		w.scratch = binary.LittleEndian.AppendUint32(w.scratch, uint32(v))
	}
	return w.writeBytes(name, w.scratch)
}

// WriteRaw writes the next declared tensor from little-endian bytes already
// in its dtype.
func (w *Writer) WriteRaw(name string, raw []byte) error {
	s, err := w.expect(name, -1)
	if err != nil && s.Name != name {
		return w.fail(err)
	}
	if want := uint64(s.numElements()) * s.DType.Size(); uint64(len(raw)) != want {
		return w.fail(fmt.Errorf("%s: tensor %q: got %d bytes, want %d", w.path, name, len(raw), want))
	}
	return w.writeBytes(name, raw)
}

func (w *Writer) writeBytes(name string, b []byte) error {
	if _, err := w.buf.Write(b); err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: %w", w.path, name, err))
	}
	w.next++
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Commit flushes, syncs and renames the file into place. It fails if not
// every declared tensor was written; on failure the temporary file is removed.
func (w *Writer) Commit() error {
	if w.closed {
		return fmt.Errorf("%s: writer already closed", w.path)
	}
	if w.err == nil && w.next != len(w.specs) {
		w.err = fmt.Errorf("%s: only %d of %d tensors written", w.path, w.next, len(w.specs))
	}
	if w.err == nil {
		w.err = w.buf.Flush()
	}
	if w.err == nil {
		w.err = w.tmp.Sync()
	}
	if err := w.tmp.Close(); w.err == nil {
		w.err = err
	}
	w.closed = true
	if w.err == nil {
		w.err = os.Rename(w.tmp.Name(), w.path)
	}
	if w.err != nil {
		os.Remove(w.tmp.Name())
		return w.err
	}
	return nil
}

// Abort discards the partial output. It is safe to call after Commit.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// WriteFileAtomic writes data to path through a temporary file and rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
