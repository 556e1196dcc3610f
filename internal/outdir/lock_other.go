//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package outdir

import "os"

// tryLock holds the lock when the file is empty (no process id written),
// as a lock file created exclusively would be: without advisory locks a
// lock left by a run that died must be removed by hand.
func tryLock(f *os.File) (held bool, err error) {
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	return st.Size() == 0, nil
}

// unlock does nothing: removing the file releases the lock.
func unlock(*os.File) {}
