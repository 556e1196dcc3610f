package convert

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
)

// spool collects tensors produced in any order in a temporary file, so the
// final file can be written in storage order with memory bounded by one
// tensor.
type spool struct {
	mu     sync.Mutex
	f      *os.File
	off    int64
	dtype  formats.DType
	tensor map[string]spooled
}

type spooled struct {
	off, size int64
	shape     []int
}

func newSpool(dir string, dtype formats.DType) (*spool, error) {
	f, err := os.CreateTemp(dir, ".vlora-spool-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file in %s: %w", dir, err)
	}
	return &spool{f: f, dtype: dtype, tensor: map[string]spooled{}}, nil
}

// put encodes data in the spool's dtype and appends it.
func (s *spool) put(name string, shape []int, data []float32) error {
	raw, err := encode(data, s.dtype)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.WriteAt(raw, s.off); err != nil {
		return fmt.Errorf("spooling %s: %w", name, err)
	}
	s.tensor[name] = spooled{off: s.off, size: int64(len(raw)), shape: shape}
	s.off += int64(len(raw))
	return nil
}

// writeTo writes every named tensor, in order, into w.
func (s *spool) writeTo(w *formats.Writer, names []string) error {
	var buf []byte
	for _, n := range names {
		t, ok := s.tensor[n]
		if !ok {
			return fmt.Errorf("internal: tensor %q was not produced", n)
		}
		if int64(cap(buf)) < t.size {
			buf = make([]byte, t.size)
		}
		buf = buf[:t.size]
		if _, err := s.f.ReadAt(buf, t.off); err != nil && err != io.EOF {
			return err
		}
		if err := w.WriteRaw(n, buf); err != nil {
			return err
		}
	}
	return nil
}

func (s *spool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// encode converts data to little-endian bytes of dtype through a one-tensor
// safetensors encoding.
func encode(data []float32, dt formats.DType) ([]byte, error) {
	return formats.EncodeFloat32(nil, data, dt)
}
