package formats

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxConfigSize bounds a config.json or shard index (16 MiB).
const MaxConfigSize = 16 << 20

// OpenRegular opens path for reading after checking, without opening it,
// that it is a regular file (following symbolic links): a directory, a
// FIFO or a device is refused with an error wrapping ErrInvalid, so that no
// reader blocks on a pipe or reads without end from a device.
func OpenRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%s)", path, ErrInvalid, DescribeMode(st.Mode()))
	}
	return os.Open(path)
}

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalid, limit)
	}
	return b, nil
}

// ReadRegularFile reads the regular file at path (see OpenRegular: a
// FIFO, a device or a directory is refused before it is opened), refusing
// a file longer than limit bytes; both refusals wrap ErrInvalid and name
// the file.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	return readSmallFile(path, limit)
}

// DescribeMode names the kind of file a mode describes, for messages: "a
// directory", "a FIFO", "a character device"...
func DescribeMode(m fs.FileMode) string {
	switch t := m.Type(); {
	case t.IsRegular():
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}
