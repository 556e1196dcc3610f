package kernels

import (
	"sync"
	"unsafe"
)

// bufferAlign is the alignment, in bytes, of packing buffers: one cache line,
// which is also the width of an AVX-512 register.
const bufferAlign = 64

// bufferPool recycles packing buffers between Sgemm calls so that the hot
// path does not allocate. It holds only scratch memory; no result depends on
// its contents.
var bufferPool sync.Pool

// buffer is a pooled scratch slice whose first element is bufferAlign-aligned.
type buffer struct {
	raw []float32
	s   []float32
}

// getBuffer returns a buffer of at least n float32s.
func getBuffer(n int) *buffer {
	const pad = bufferAlign / 4
	if v, ok := bufferPool.Get().(*buffer); ok {
		if cap(v.raw) >= n+pad {
			v.s = align(v.raw[:n+pad])[:n]
			return v
		}
	}
	raw := make([]float32, n+pad)
	return &buffer{raw: raw, s: align(raw)[:n]}
}

// release returns the buffer to the pool; it does nothing for a nil buffer.
func (b *buffer) release() {
	if b != nil {
		bufferPool.Put(b)
	}
}

// align returns the suffix of s that starts on a bufferAlign boundary.
func align(s []float32) []float32 {
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(s))) % bufferAlign)
	if off == 0 {
		return s
	}
	return s[(bufferAlign-off)/4:]
}
