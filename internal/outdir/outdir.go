// Package outdir gives a command ownership of the output directory it
// writes: a lock while it runs, a record of the files it wrote, refusal to
// write into a directory holding files it did not write, and a staging
// directory whose files replace the previous run's only when the run
// succeeds.
//
// A run opens the directory with Open, writes every output into Work (a
// hidden staging directory inside it) and calls Commit on success, which
// moves the staged files into place, removes the files of the previous run
// that the new run did not write, and records the new set. Close releases
// the lock; a run that did not commit leaves the previous run's files as they
// were, and (unless asked to keep them, as an interrupted run that can resume
// is) removes what it staged.
//
// Bad paths, foreign files and a directory locked by another run wrap
// formats.ErrInvalid (exit code 2 on the command line).
package outdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// File names the package keeps inside an output directory.
const (
	// LockName is the lock file, holding the process id of the run that
	// owns the directory; it exists only while a run does.
	LockName = ".vlora-convert.lock"
	// RecordName is the record of the files the last successful run wrote.
	RecordName = ".vlora-convert.json"
	// StagingName is the staging directory a run writes into; what it
	// holds after a run ended is incomplete (an interrupted run's
	// checkpoint, for instance) and never under the final names.
	StagingName = ".vlora-convert.partial"
)

// maxRecordBytes bounds the record read back (1 MiB).
const maxRecordBytes = 1 << 20

// ErrLocked is returned (wrapped, with formats.ErrInvalid) by Open when
// another run holds the directory.
var ErrLocked = errors.New("in use by another run")

// Options configure Open.
type Options struct {
	// Flag names the output in messages, e.g. "--out".
	Flag string
	// Force accepts a directory holding files the tool did not write;
	// those files are left alone unless the run writes the same names.
	Force bool
	// Resume keeps what an earlier, interrupted run staged, even when this
	// run fails; otherwise the staging directory is emptied when the
	// directory is opened.
	Resume bool
	// InPlace opens the directory of an existing output that the run
	// replaces file by file (atomically) without staging: only the lock is
	// taken and no file is refused; Commit adds the files written to the
	// record when there is one.
	InPlace bool
}

// record is the file RecordName: the files the last run wrote.
type record struct {
	Tool  string   `json:"tool"`
	Files []string `json:"files"`
}

// Dir is an output directory owned by one run.
type Dir struct {
	path    string
	opt     Options
	lock    *lock
	created bool
	prev    []string
	hasPrev bool
	stage   string
	done    bool
}

// Open takes ownership of the directory path, creating it when it does not
// exist. It fails when path is not a directory or cannot be created or
// written, when another run holds it, or (unless opt.Force or opt.InPlace)
// when it holds a file that the tool did not write, named in the error.
func Open(path string, opt Options) (*Dir, error) {
	if opt.Flag == "" {
		opt.Flag = "--out"
	}
	d := &Dir{path: path, opt: opt}
	if path == "" {
		return nil, d.bad("empty path")
	}
	if err := d.create(); err != nil {
		return nil, err
	}
	if !opt.InPlace && !d.created {
		// Refuse a foreign directory before the lock file touches it;
		// checked again under the lock.
		d.prev, d.hasPrev = readRecord(filepath.Join(path, RecordName))
		if err := d.checkForeign(); err != nil {
			return nil, err
		}
	}
	l, err := acquire(filepath.Join(path, LockName))
	if err != nil {
		d.removeCreated()
		return nil, fmt.Errorf("%s %s: %w: %w", opt.Flag, path, formats.ErrInvalid, err)
	}
	d.lock = l
	d.prev, d.hasPrev = readRecord(filepath.Join(path, RecordName))
	if !opt.InPlace {
		if err := d.checkForeign(); err != nil {
			d.Close(false)
			return nil, err
		}
		d.stage = filepath.Join(path, StagingName)
		if !opt.Resume {
			if err := os.RemoveAll(d.stage); err != nil {
				d.Close(false)
				return nil, d.bad("clearing %s: %v", d.stage, err)
			}
		}
		if err := os.MkdirAll(d.stage, 0o755); err != nil {
			d.Close(false)
			return nil, d.bad("%v", err)
		}
	}
	return d, nil
}

// bad returns an invalid-input error about the directory.
func (d *Dir) bad(format string, a ...any) error {
	return fmt.Errorf("%s %s: %w: %s", d.opt.Flag, d.path, formats.ErrInvalid, fmt.Sprintf(format, a...))
}

// create makes the directory when it is missing, after checking that the
// path is not a file.
func (d *Dir) create() error {
	st, err := os.Stat(d.path)
	switch {
	case err == nil && !st.IsDir():
		return d.bad("not a directory")
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return d.bad("cannot create the directory: %v", unwrapPath(err))
	}
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return d.bad("cannot create the directory: %v", unwrapPath(err))
	}
	d.created = true
	return nil
}

// unwrapPath drops the path from a *fs.PathError, which the messages name
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkForeign refuses a directory holding an entry the record does not
// list, unless Force.
func (d *Dir) checkForeign() error {
	if d.opt.Force {
		return nil
	}
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return d.bad("%v", unwrapPath(err))
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == StagingName && e.IsDir(), ours(n) && n != StagingName && e.Type().IsRegular():
			continue
		case slices.Contains(d.prev, n) && e.Type().IsRegular():
			continue
		}
		return d.bad("holds %s, which vlora-convert did not write; choose a new or empty directory, or pass --force to write there anyway", n)
	}
	return nil
}

// ours reports whether name is one of the package's own files or a
// temporary file of an atomic write (".NAME.tmp-*").
func ours(name string) bool {
	switch name {
	case LockName, RecordName, StagingName:
		return true
	}
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// readRecord returns the files of the record at path; ok is false when
// there is none, or it cannot be read.
func readRecord(path string) (files []string, ok bool) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b := make([]byte, maxRecordBytes+1)
	n, _ := f.ReadAt(b, 0)
	if n > maxRecordBytes {
		return nil, false
	}
	var r record
	if json.Unmarshal(b[:n], &r) != nil {
		return nil, false
	}
	for _, name := range r.Files {
		if name != filepath.Base(name) || name == "." || name == ".." || ours(name) {
			return nil, false // not a record this package wrote
		}
	}
	return r.Files, true
}

// Path returns the output directory.
func (d *Dir) Path() string { return d.path }

// Work returns the directory the run writes into: the staging directory,
// or the output directory itself when opened InPlace.
func (d *Dir) Work() string {
	if d.stage == "" {
		return d.path
	}
	return d.stage
}

// Commit ends a successful run. The files staged in Work replace those of
// the same names in the directory, one rename each; the files the previous
// run wrote and this one did not are removed; the record then lists the
// staged files. extra names files the run wrote directly into the
// directory (InPlace) that the record is to list too.
func (d *Dir) Commit(extra ...string) error {
	if d.done {
		return errors.New("outdir: Commit after Close")
	}
	var names []string
	if d.stage != "" {
		entries, err := os.ReadDir(d.stage)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !ours(e.Name()) {
				names = append(names, e.Name())
			}
		}
		// The record lists old and new files while they are moved, so an
		// interruption here leaves no file unaccounted for.
		if err := d.writeRecord(union(d.prev, names)); err != nil {
			return err
		}
		for _, n := range names {
			if err := os.Rename(filepath.Join(d.stage, n), filepath.Join(d.path, n)); err != nil {
				return fmt.Errorf("%s %s: %w", d.opt.Flag, d.path, err)
			}
		}
		for _, n := range d.prev {
			if !slices.Contains(names, n) {
				if err := os.Remove(filepath.Join(d.path, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%s %s: removing the previous run's %s: %w", d.opt.Flag, d.path, n, err)
				}
			}
		}
		if err := os.RemoveAll(d.stage); err != nil {
			return err
		}
	} else {
		if !d.hasPrev {
			d.done = true
			d.release()
			return nil
		}
		names = union(d.prev, extra)
	}
	if err := d.writeRecord(names); err != nil {
		return err
	}
	d.done = true
	d.release()
	return nil
}

// union returns the sorted names of a and b, without repeats.
func union(a, b []string) []string {
	u := append(slices.Clone(a), b...)
	slices.Sort(u)
	return slices.Compact(u)
}

// writeRecord records names as the directory's files.
func (d *Dir) writeRecord(names []string) error {
	b, err := json.MarshalIndent(record{Tool: "vlora-convert", Files: names}, "", "  ")
	if err != nil {
		return err
	}
	return formats.WriteFileAtomic(filepath.Join(d.path, RecordName), append(b, '\n'))
}

// Close ends the run, releasing the lock; it does nothing after Commit.
// Without a Commit the previous run's files are left as they were; what the
// run staged is removed unless keep is set (an interrupted run that can
// resume from it) or the directory was opened to Resume, and a directory Open created is removed when nothing
// else is left in it.
func (d *Dir) Close(keep bool) {
	if d.done {
		return
	}
	d.done = true
	if d.stage != "" {
		if !keep && !d.opt.Resume {
			os.RemoveAll(d.stage)
		}
		os.Remove(d.stage) // when kept but empty
	}
	d.release()
	d.removeCreated()
}

// release removes and unlocks the lock file.
func (d *Dir) release() {
	if d.lock != nil {
		d.lock.release()
		d.lock = nil
	}
}

// removeCreated removes the directory when Open created it and it is
// empty (os.Remove fails, as intended, on a directory holding files).
func (d *Dir) removeCreated() {
	if d.created {
		os.Remove(d.path)
	}
}
