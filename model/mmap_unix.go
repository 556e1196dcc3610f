//go:build unix

package model

import (
	"fmt"
	"syscall"

	"github.com/vlora-convert/vlora-convert/formats"
)

// mapFile maps the regular file path read-only into memory. The pages are
// the file's (shared with the page cache): they count towards the resident
// set only once read, and cost no copy.
func mapFile(path string) (*mapped, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return &mapped{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %w: %d bytes cannot be mapped", path, formats.ErrInvalid, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	// A file truncated while it is mapped faults on access, as with any
	// memory-mapped reader; the command line's inputs are never written
	// while a command reads them.
	return &mapped{data: data, unmap: func() error { return syscall.Munmap(data) }}, nil
}
