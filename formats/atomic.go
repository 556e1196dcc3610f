package formats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AtomicFile is an output file written through a buffered temporary file
// in the destination directory, which Commit renames into place. The first
// failed write, a failed Commit, Fail or Abort removes the temporary file,
// so a partial file never appears under the final name and nothing is left
// behind; after a failure every call returns the first error. The
// safetensors and GGUF writers stream through it.
type AtomicFile struct {
	path   string
	tmp    *os.File
	buf    *bufio.Writer
	err    error
	closed bool
}

// errClosed is returned by writes after Commit or Abort.
var errClosed = errors.New("writer already closed")

// CreateAtomic starts writing the file at path (mode 0644 once committed)
// through a temporary file beside it.
func CreateAtomic(path string) (*AtomicFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%s: creating output: %w", path, err)
	}
	return &AtomicFile{path: path, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20)}, nil
}

// Path returns the final path of the file.
func (f *AtomicFile) Path() string { return f.path }

// Err returns the first error, or, once the file is committed or aborted,
// an error saying that it is closed; nil while it can be written.
func (f *AtomicFile) Err() error {
	if f.err != nil {
		return f.err
	}
	if f.closed {
		return fmt.Errorf("%s: %w", f.path, errClosed)
	}
	return nil
}

// Write writes p through the buffer; a failure removes the temporary file.
func (f *AtomicFile) Write(p []byte) (int, error) {
	if err := f.Err(); err != nil {
		return 0, err
	}
	n, err := f.buf.Write(p)
	if err != nil {
		return n, f.Fail(fmt.Errorf("%s: %w", f.path, err))
	}
	return n, nil
}

// Fail records err as the first error (unless there is one already),
// removes the temporary file and returns the first error.
func (f *AtomicFile) Fail(err error) error {
	if f.err == nil {
		f.err = err
	}
	f.Abort()
	return f.err
}

// Commit flushes, syncs and renames the file into place. On failure the
// temporary file is removed.
func (f *AtomicFile) Commit() error {
	if err := f.Err(); err != nil {
		return err
	}
	for _, step := range []func() error{f.buf.Flush, func() error { return f.tmp.Chmod(0o644) }, f.tmp.Sync} {
		if err := step(); err != nil {
			return f.Fail(fmt.Errorf("%s: %w", f.path, err))
		}
	}
	err := f.tmp.Close()
	f.closed = true
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		f.err = fmt.Errorf("%s: %w", f.path, err)
		os.Remove(f.tmp.Name())
		return f.err
	}
	return nil
}

// Abort discards the partial output. It is safe after Commit and more than
// once.
func (f *AtomicFile) Abort() {
	if f.closed {
		return
	}
	f.closed = true
	f.tmp.Close()
	os.Remove(f.tmp.Name())
}
