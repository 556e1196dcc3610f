package outdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
)

// CheckFile checks, before anything is opened for writing, that path can
// name an output file that flag writes: not a directory, inside an
// existing directory the process can create files in. An existing file is
// accepted only when owned reports it a previous output of the same kind
// (nil: never), or with force; anything else — an input, another tool's
// file — is refused naming it. Errors wrap formats.ErrInvalid.
func CheckFile(flag, path string, force bool, owned func(path string) bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s %s: %w: %s", flag, path, formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	if path == "" {
		return bad("empty path")
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return bad("is a directory; name a file")
	case err == nil && !st.Mode().IsRegular():
		return bad("not a regular file")
	case err == nil && !force && (owned == nil || !owned(path)):
		return bad("exists and is not an earlier output of %s; remove it or choose another path", flag)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return bad("%v", unwrapPath(err))
	}
	dir := filepath.Dir(path)
	ds, err := os.Stat(dir)
	if err != nil {
		return bad("its directory: %v", unwrapPath(err))
	}
	if !ds.IsDir() {
		return bad("%s is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return bad("cannot write in %s: %v", dir, unwrapPath(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// HasPrefix returns an owned function for CheckFile that accepts a file
// starting with prefix (a file format's magic bytes).
func HasPrefix(prefix []byte) func(path string) bool {
	return func(path string) bool {
		f, err := formats.OpenRegular(path)
		if err != nil {
			return false
		}
		defer f.Close()
		b := make([]byte, len(prefix))
		n, _ := f.ReadAt(b, 0)
		return n == len(prefix) && string(b) == string(prefix)
	}
}
