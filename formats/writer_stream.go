package formats

import (
	"fmt"
	"io"
)

// WriteRawFrom writes the next declared tensor by copying its little-endian
// bytes, already in the declared dtype, from r. Exactly the declared byte
// length is read, through a bounded buffer, so tensors of any size stream.
func (w *Writer) WriteRawFrom(name string, r io.Reader) error {
	s, err := w.expect(name)
	if err != nil {
		return err
	}
	want := int64(s.numElements()) * int64(s.DType.Size())
	n, err := io.CopyN(w.out, r, want)
	if err != nil {
		return w.fail(fmt.Errorf("%s: tensor %q: copied %d of %d bytes: %w", w.path, name, n, want, err))
	}
	w.next++
	return nil
}
