package formats

import (
	"fmt"
	"io"
)

// chunkBuf returns a byte buffer of length n from f's pool. Streaming
// callers (a model reading its blocks during every pass) read the whole
// model again and again; without reuse each pass would leave the model's
// size in garbage.
func (f *File) chunkBuf(n int64) *[]byte {
	if b, ok := f.chunks.Get().(*[]byte); ok && int64(cap(*b)) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

// ReadFloat32At reads elements [off, off+len(dst)) of the named
// floating-point tensor into dst, converted to float32. It lets callers
// stream tensors larger than they want to hold in memory.
func (f *File) ReadFloat32At(name string, off int, dst []float32) error {
	t, ok := f.tensors[name]
	if !ok {
		return fmt.Errorf("%s: %w: no tensor %q", f.path, ErrInvalid, name)
	}
	if off < 0 || off+len(dst) > t.NumElements() {
		return fmt.Errorf("%s: tensor %q: elements [%d, %d) out of range (%d)", f.path, name, off, off+len(dst), t.NumElements())
	}
	es := int64(t.DType.Size())
	bp := f.chunkBuf(int64(len(dst)) * es)
	defer f.chunks.Put(bp)
	buf := *bp
	n, err := f.r.ReadAt(buf, t.Offset+int64(off)*es)
	if n == len(buf) {
		err = nil
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	if err := DecodeFloat32(dst, buf, t.DType); err != nil {
		return fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return nil
}

// ReadFloat32At reads elements [off, off+len(dst)) of the named tensor (see
// File.ReadFloat32At).
func (c *Checkpoint) ReadFloat32At(name string, off int, dst []float32) error {
	f, err := c.file(name)
	if err != nil {
		return err
	}
	return f.ReadFloat32At(name, off, dst)
}
