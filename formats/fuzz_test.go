package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// FuzzSafetensorsHeader feeds arbitrary bytes to NewFile. It must never
// panic; a rejected input must give one ErrInvalid error naming the file
// (reads from memory cannot fail otherwise); an accepted file must describe
// tensors that lie inside the data section, do not overlap, have a byte
// length matching dtype × shape, and can all be read back. The seed corpus in
// testdata/fuzz/FuzzSafetensorsHeader holds small well-formed files and the
// malformed cases of the reader tests.
func FuzzSafetensorsHeader(f *testing.F) {
	for _, tc := range badFiles {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz.safetensors"
		sf, err := NewFile(path, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if sf != nil {
				t.Fatalf("NewFile returned both a file and the error %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q does not name the file first", err)
			}
			return
		}
		checkAcceptedFile(t, sf, data)
	})
}

// checkAcceptedFile checks the invariants of a file NewFile accepted from
// data.
func checkAcceptedFile(t *testing.T, sf *File, data []byte) {
	dataOff := 8 + int64(binary.LittleEndian.Uint64(data))
	size := int64(len(data))
	names := sf.Names()
	seen := map[string]bool{}
	type span struct {
		start, end int64
		name       string
	}
	var spans []span
	prevOff := int64(-1)
	for _, name := range names {
		if seen[name] {
			t.Fatalf("tensor %q listed twice by Names", name)
		}
		seen[name] = true
		info, ok := sf.Info(name)
		if !ok || info.Name != name || info.File != sf.Path() {
			t.Fatalf("Info(%q) = %+v, %v", name, info, ok)
		}
		if info.Offset < prevOff {
			t.Fatalf("Names not in storage order at %q", name)
		}
		prevOff = info.Offset
		if info.Offset < dataOff || info.Size < 0 || info.Offset+info.Size > size {
			t.Fatalf("tensor %q: bytes [%d, %d) outside the data section [%d, %d)", name, info.Offset, info.Offset+info.Size, dataOff, size)
		}
		elems := uint64(1)
		for _, d := range info.Shape {
			if d < 0 {
				t.Fatalf("tensor %q: negative dimension in %v", name, info.Shape)
			}
			elems *= uint64(d)
		}
		if uint64(info.NumElements()) != elems || elems*info.DType.Size() != uint64(info.Size) {
			t.Fatalf("tensor %q: %s × %v is not %d bytes", name, info.DType, info.Shape, info.Size)
		}
		if info.Size > 0 {
			spans = append(spans, span{info.Offset, info.Offset + info.Size, name})
		}

		raw, _, err := sf.ReadRaw(name)
		if err != nil {
			t.Fatalf("ReadRaw(%q): %v", name, err)
		}
		if !bytes.Equal(raw, data[info.Offset:info.Offset+info.Size]) {
			t.Fatalf("ReadRaw(%q) returned other bytes than the file holds", name)
		}
		switch {
		case IsFloat(info.DType):
			v32, err := sf.ReadFloat32(name)
			if err != nil || len(v32) != info.NumElements() {
				t.Fatalf("ReadFloat32(%q) = %d values, %v; want %d", name, len(v32), err, info.NumElements())
			}
			v64, err := sf.ReadFloat64(name)
			if err != nil || len(v64) != info.NumElements() {
				t.Fatalf("ReadFloat64(%q) = %d values, %v; want %d", name, len(v64), err, info.NumElements())
			}
			for i := range v32 {
				if a, b := float64(v32[i]), v64[i]; a != b && !(math.IsNaN(a) && math.IsNaN(b)) && float64(float32(b)) != a {
					t.Fatalf("tensor %q[%d]: ReadFloat32 %v and ReadFloat64 %v disagree", name, i, a, b)
				}
			}
		case IsInt(info.DType):
			v, err := sf.ReadInts(name)
			if err != nil || len(v) != info.NumElements() {
				t.Fatalf("ReadInts(%q) = %d values, %v; want %d", name, len(v), err, info.NumElements())
			}
		default:
			t.Fatalf("tensor %q: dtype %d is neither float nor int", name, info.DType)
		}
	}
	if len(names) != len(seen) {
		t.Fatal("Names has duplicates")
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			t.Fatalf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
}

// TestFuzzCorpusLabels checks that the seed corpus says what its file names
// claim: files named valid-* are accepted and files named bad-* rejected.
func TestFuzzCorpusLabels(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzSafetensorsHeader")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[bool]int{}
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(body), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a one-value fuzz corpus file", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		valid := strings.HasPrefix(e.Name(), "valid-")
		if !valid && !strings.HasPrefix(e.Name(), "bad-") {
			continue // an input the fuzzer found, kept as a regression
		}
		counts[valid]++
		_, err = NewFile(e.Name(), bytes.NewReader([]byte(s)), int64(len(s)))
		if valid && err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
		if !valid && err == nil {
			t.Errorf("%s: accepted", e.Name())
		}
	}
	if counts[true] == 0 || counts[false] == 0 {
		t.Errorf("corpus has %d valid and %d bad files, want some of each", counts[true], counts[false])
	}
}
