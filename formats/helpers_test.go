package formats

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// sharedDir returns the read-only test material directory ../shared next to
// the repository root (skipped when absent, failed when CI=true).
func sharedDir(t testing.TB) string { return testenv.Shared(t, ".") }

// rawFile assembles a safetensors file from a header document and data bytes,
// without any validation, so tests can build malformed files.
func rawFile(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// entry is one tensor of a header built by header.
type entry struct {
	name    string
	dtype   string
	shape   []uint64
	offsets [2]uint64
}

// header encodes entries (and metadata, when not nil) as a safetensors header
// in the given order.
func header(metadata map[string]string, entries ...entry) string {
	var b strings.Builder
	b.WriteByte('{')
	if metadata != nil {
		md, _ := json.Marshal(metadata)
		b.WriteString(`"__metadata__":`)
		b.Write(md)
	}
	for i, e := range entries {
		if i > 0 || metadata != nil {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(e.name)
		shape, _ := json.Marshal(e.shape)
		if e.shape == nil {
			shape = []byte("[]")
		}
		offs, _ := json.Marshal(e.offsets)
		b.Write(name)
		b.WriteString(`:{"dtype":"` + e.dtype + `","shape":` + string(shape) + `,"data_offsets":` + string(offs) + `}`)
	}
	b.WriteByte('}')
	return b.String()
}

// writeTemp writes data to a file named name in a new temporary directory
// and returns its path.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkInvalid fails t unless err is an ErrInvalid error whose message
// contains every one of want.
func checkInvalid(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// dirEntries returns the names in dir.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
