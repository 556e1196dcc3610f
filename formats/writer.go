package formats

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/nlpodyssey/safetensors"
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

// validate checks that s can be stored: a known dtype and non-negative
// dimensions whose product stays within the element limit.
func (s TensorSpec) validate() error {
	if s.DType > safetensors.U64 {
		return fmt.Errorf("%w: tensor %q: unknown dtype %d", ErrInvalid, s.Name, s.DType)
	}
	n := uint64(1)
	for _, d := range s.Shape {
		if d < 0 {
			return fmt.Errorf("%w: tensor %q: negative dimension in shape %v", ErrInvalid, s.Name, s.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if uint64(d) > maxElements || hi != 0 || lo > maxElements {
			return fmt.Errorf("%w: tensor %q: shape %v overflows", ErrInvalid, s.Name, s.Shape)
		}
		n = lo
	}
	return nil
}

// Writer streams a safetensors file: the header is computed from the
// declared tensors up front, then the tensors are written one at a time in
// declaration order, so memory holds at most one tensor. Output goes to a
// temporary file in the destination directory that Commit renames into place.
// The first failed write, a failed Commit, or Abort removes the temporary
// file, so a partial file never appears under the final name and nothing is
// left behind; after a failure every call returns the first error.
type Writer struct {
	path    string
	out     *AtomicFile
	specs   []TensorSpec
	next    int
	scratch []byte
}

// Create starts writing a safetensors file at path holding the given tensors,
// in that order, with metadata as its __metadata__ map. The file is created
// with mode 0644.
func Create(path string, metadata map[string]string, specs []TensorSpec) (*Writer, error) {
	header, err := buildHeader(metadata, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, out: out, specs: specs}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	w.out.Write(n[:]) // the first error is kept for the next Write
	if _, err := w.out.Write(header); err != nil {
		return nil, w.fail(fmt.Errorf("%s: writing header: %w", path, err))
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
		// encoding/json writes map keys sorted, so the header is deterministic.
		b, err := json.Marshal(metadata)
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
		if err := s.validate(); err != nil {
			return nil, err
		}
		seen[s.Name] = true
		size := uint64(s.numElements()) * s.DType.Size()
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, err := json.Marshal(s.Name)
		if err != nil {
			return nil, err
		}
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

// expect returns the spec of the next tensor after checking that it is name.
func (w *Writer) expect(name string) (TensorSpec, error) {
	if err := w.out.Err(); err != nil {
		if errors.Is(err, errClosed) {
			return TensorSpec{}, fmt.Errorf("%s: tensor %q: %w", w.path, name, errClosed)
		}
		return TensorSpec{}, err
	}
	if w.next >= len(w.specs) {
		return TensorSpec{}, w.fail(fmt.Errorf("%s: tensor %q written after all %d declared tensors", w.path, name, len(w.specs)))
	}
	s := w.specs[w.next]
	if s.Name != name {
		return s, w.fail(fmt.Errorf("%s: tensor %q written out of order (expected %q)", w.path, name, s.Name))
	}
	return s, nil
}

// WriteFloat32 writes the next declared tensor, converting data to its
// floating-point dtype.
func (w *Writer) WriteFloat32(name string, data []float32) error {
	s, err := w.expect(name)
	if err != nil {
		return err
	}
	if s.numElements() != len(data) {
		return w.fail(fmt.Errorf("%s: tensor %q: got %d elements, shape %v needs %d", w.path, name, len(data), s.Shape, s.numElements()))
	}
	w.scratch, err = EncodeFloat32(w.scratch[:0], data, s.DType)
	if err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: %w", w.path, name, err))
	}
	return w.writeBytes(name, w.scratch)
}

// WriteInt32 writes the next declared tensor, which must have dtype I32.
func (w *Writer) WriteInt32(name string, data []int32) error {
	s, err := w.expect(name)
	if err != nil {
		return err
	}
	if s.DType != I32 {
		return w.fail(fmt.Errorf("%s: tensor %q declared %s, written as I32", w.path, name, s.DType))
	}
	if s.numElements() != len(data) {
		return w.fail(fmt.Errorf("%s: tensor %q: got %d elements, shape %v needs %d", w.path, name, len(data), s.Shape, s.numElements()))
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
	s, err := w.expect(name)
	if err != nil {
		return err
	}
	if want := uint64(s.numElements()) * s.DType.Size(); uint64(len(raw)) != want {
		return w.fail(fmt.Errorf("%s: tensor %q: got %d bytes, %s × %v needs %d", w.path, name, len(raw), s.DType, s.Shape, want))
	}
	return w.writeBytes(name, raw)
}

func (w *Writer) writeBytes(name string, b []byte) error {
	if _, err := w.out.Write(b); err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: %w", w.path, name, err))
	}
	w.next++
	return nil
}

// fail records the first error and removes the temporary file.
func (w *Writer) fail(err error) error { return w.out.Fail(err) }

// Commit flushes, syncs and renames the file into place. It fails if a write
// failed or not every declared tensor was written; on failure the temporary
// file is removed.
func (w *Writer) Commit() error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.next != len(w.specs) {
		return w.fail(fmt.Errorf("%s: only %d of %d tensors written (next: %q)", w.path, w.next, len(w.specs), w.specs[w.next].Name))
	}
	return w.out.Commit()
}

// Abort discards the partial output. It is safe to call after Commit and
// more than once.
func (w *Writer) Abort() { w.out.Abort() }

// WriteFileAtomic writes data to path, with mode 0644, through a temporary
// file in the same directory that is renamed into place, so path holds either
// its old content or all of data.
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
