package outdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lock is a held lock file.
type lock struct {
	path string
	f    *os.File
}

// acquire takes the lock file at path, writing the process id into it. It
// fails naming the lock and the holder's process id when another run holds
// it. A lock left by a run that died is taken over (the operating system
// releases the lock of a dead process).
func acquire(path string) (*lock, error) {
	for attempt := 0; attempt < 8; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cannot create the lock file %s: %v", path, unwrapPath(err))
		}
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %v", path, err)
		}
		if !held {
			pid := readPID(f)
			f.Close()
			return nil, fmt.Errorf("%w (lock %s held by pid %s); wait for that run to end or choose another directory", ErrLocked, filepath.Base(path), pid)
		}
		// The holder may have removed the file between our open and our
		// lock: the lock counts only if path still names the file locked.
		if same(f, path) {
			if err := f.Truncate(0); err == nil {
				_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			if err != nil {
				unlock(f)
				f.Close()
				os.Remove(path)
				return nil, fmt.Errorf("writing the lock file %s: %v", path, unwrapPath(err))
			}
			return &lock{path: path, f: f}, nil
		}
		unlock(f)
		f.Close()
	}
	return nil, fmt.Errorf("%w (lock %s keeps changing)", ErrLocked, path)
}

// same reports whether path names the open file f.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// readPID returns the process id recorded in a lock file, "unknown" when
// it holds none.
func readPID(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	s := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(s); err != nil {
		return "unknown"
	}
	return s
}

// release removes the lock file, then unlocks it.
func (l *lock) release() {
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.f.Truncate(0)
	}
	unlock(l.f)
	l.f.Close()
}
