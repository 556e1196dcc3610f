package outdir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// run opens dir, stages files (name → content) and commits.
func run(t *testing.T, dir string, opt Options, files map[string]string) {
	t.Helper()
	d, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(false)
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(d.Work(), n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
}

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCommitReplacesAndRemovesStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	run(t, dir, Options{}, map[string]string{"a": "1", "tokenizer.json": "{}"})
	run(t, dir, Options{}, map[string]string{"a": "2", "b": "3"})
	got := names(t, dir)
	want := []string{RecordName, "a", "b"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v (the stale tokenizer.json removed, no lock or staging left)", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "2" {
		t.Errorf("a holds %q, want the new run's 2", b)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path opened
		opt   Options
		want  string // "" when Open must succeed
	}{
		{"foreign file", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
			return dir
		}, Options{}, "holds config.json, which vlora-convert did not write"},
		{"foreign file, forced", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
			return dir
		}, Options{Force: true}, ""},
		{"foreign file, in place", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
			return dir
		}, Options{InPlace: true}, ""},
		{"a file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "f")
			os.WriteFile(p, nil, 0o644)
			return p
		}, Options{}, "not a directory"},
		{"under a file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "f")
			os.WriteFile(p, nil, 0o644)
			return filepath.Join(p, "out")
		}, Options{}, "cannot create the directory"},
		{"a directory under the record's name", func(t *testing.T, dir string) string {
			os.Mkdir(filepath.Join(dir, RecordName), 0o755)
			return dir
		}, Options{}, "holds " + RecordName},
		{"a file under the staging directory's name", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, StagingName), nil, 0o644)
			return dir
		}, Options{}, "holds " + StagingName},
		{"malformed record", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, RecordName), []byte(`{"files": ["../x"]}`), 0o644)
			os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
			return dir
		}, Options{}, "holds x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t, t.TempDir())
			d, err := Open(p, tc.opt)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				d.Close(false)
				return
			}
			if err == nil {
				d.Close(false)
				t.Fatalf("Open succeeded, want an error containing %q", tc.want)
			}
			if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want formats.ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrLocked) || !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), LockName) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, LockName)
	}
	d.Close(false)
	d2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d2.Close(false)
	// A lock file left by a run that died (no lock held) is taken over.
	os.WriteFile(filepath.Join(dir, LockName), []byte("999999999\n"), 0o644)
	d3, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open over a stale lock file: %v", err)
	}
	d3.Close(false)
}

func TestCloseWithoutCommit(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	// A failed first run leaves nothing, not even the directory.
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d.Work(), "a"), []byte("new"), 0o644)
	d.Close(false)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("failed run left %s: %v", dir, err)
	}
	// An interrupted re-run keeps the previous run's file under its name,
	// its own partial file only in the staging directory.
	run(t, dir, Options{}, map[string]string{"a": "old"})
	d, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d.Work(), "a"), []byte("partial"), 0o644)
	d.Close(true)
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "old" {
		t.Errorf("a holds %q after an interrupted run, want old", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, StagingName, "a")); string(b) != "partial" {
		t.Errorf("staged a holds %q, want partial (kept)", b)
	}
	// Resume finds it; a fresh run clears it.
	d, err = Open(dir, Options{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Work(), "a")); err != nil {
		t.Errorf("resume lost the staged file: %v", err)
	}
	d.Close(true)
	d, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Work(), "a")); err == nil {
		t.Errorf("a fresh run kept the interrupted run's staged file")
	}
	d.Close(false)
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	gz := filepath.Join(dir, "cpu.prof")
	os.WriteFile(gz, []byte{0x1f, 0x8b, 8, 0}, 0o644)
	input := filepath.Join(dir, "config.json")
	os.WriteFile(input, []byte("{}"), 0o644)
	owned := HasPrefix([]byte{0x1f, 0x8b})
	for _, tc := range []struct {
		name, path string
		force      bool
		want       string
	}{
		{"new", filepath.Join(dir, "new.prof"), false, ""},
		{"previous output", gz, false, ""},
		{"an input", input, false, "is not an earlier output of --cpuprofile"},
		{"an input, forced", input, true, ""},
		{"a directory", dir, false, "is a directory"},
		{"missing directory", filepath.Join(dir, "no", "x"), false, "its directory"},
		{"under a file", filepath.Join(input, "x"), false, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFile("--cpuprofile", tc.path, tc.force, owned)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want formats.ErrInvalid containing %q", err, tc.want)
			}
		})
	}
	if got := names(t, dir); len(got) != 2 {
		t.Errorf("CheckFile left files: %v", got)
	}
}

// TestRefusedDirectoryUntouched checks that a directory refused for a
// foreign file is not written at all, not even by the lock file.
func TestRefusedDirectoryUntouched(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.safetensors"), nil, 0o644)
	old := time.Unix(1e9, 0)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("Open accepted a foreign directory")
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(old) {
		t.Errorf("the refused directory was modified at %v", st.ModTime())
	}
}

// TestResumeWithNothingStaged checks that a failed run opened to resume,
// with nothing staged, leaves no directory behind.
func TestResumeWithNothingStaged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	d, err := Open(dir, Options{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	d.Close(false)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed resume left %s: %v", dir, err)
	}
}
