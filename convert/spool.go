package convert

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
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
	raw, err := formats.EncodeFloat32(nil, data, s.dtype)
	if err != nil {
		return err
	}
	s.mu.Lock()
	off := s.off
	s.off += int64(len(raw))
	s.mu.Unlock()
	if _, err := s.f.WriteAt(raw, off); err != nil {
		return fmt.Errorf("spooling %s: %w", name, err)
	}
	s.mu.Lock()
	s.tensor[name] = spooled{off: off, size: int64(len(raw)), shape: shape}
	s.mu.Unlock()
	return nil
}

// putChunks appends a tensor of n elements produced chunk by chunk: next
// returns the chunk starting at element off. The tensor's bytes are reserved
// first, so they stay contiguous while other tensors are spooled
// concurrently.
func (s *spool) putChunks(name string, shape []int, n int, next func(off int) ([]float32, error)) error {
	size := int64(n) * int64(s.dtype.Size())
	s.mu.Lock()
	start := s.off
	s.off += size
	s.mu.Unlock()
	at := start
	var raw []byte
	for off := 0; off < n; {
		chunk, err := next(off)
		if err != nil {
			return err
		}
		if raw, err = formats.EncodeFloat32(raw[:0], chunk, s.dtype); err != nil {
			return err
		}
		if _, err := s.f.WriteAt(raw, at); err != nil {
			return fmt.Errorf("spooling %s: %w", name, err)
		}
		at += int64(len(raw))
		off += len(chunk)
	}
	if at != start+size {
		return fmt.Errorf("internal: spooled %d bytes of %s, reserved %d", at-start, name, size)
	}
	s.mu.Lock()
	s.tensor[name] = spooled{off: start, size: size, shape: shape}
	s.mu.Unlock()
	return nil
}

// writeTo writes every named tensor, in order, into w.
func (s *spool) writeTo(w *formats.Writer, names []string) error {
	for _, n := range names {
		t, ok := s.tensor[n]
		if !ok {
			return fmt.Errorf("internal: tensor %q was not produced", n)
		}
		if err := w.WriteRawFrom(n, io.NewSectionReader(s.f, t.off, t.size)); err != nil {
			return err
		}
	}
	return nil
}

// model decodes every spooled tensor into an in-memory VLoRA model described
// by mf.
func (s *spool) model(mf *vlora.Manifest) (*vlora.Model, error) {
	tensors := make(map[string]*vlora.Tensor, len(s.tensor))
	for name, t := range s.tensor {
		raw := make([]byte, t.size)
		if _, err := s.f.ReadAt(raw, t.off); err != nil {
			return nil, fmt.Errorf("reading back %s: %w", name, err)
		}
		data := make([]float32, vlora.NumElements(t.shape))
		if err := formats.DecodeFloat32(data, raw, s.dtype); err != nil {
			return nil, fmt.Errorf("reading back %s: %w", name, err)
		}
		tensors[name] = &vlora.Tensor{Data: data, Shape: t.shape}
	}
	return vlora.New(mf, tensors)
}

func (s *spool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}
