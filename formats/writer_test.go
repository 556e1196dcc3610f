package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// randFloats returns n values spread over several binades, with the
// occasional exact tie for the 16-bit formats.
func randFloats(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(20)-10)))
	}
	if n > 2 {
		out[0], out[1] = 1+0x1p-11, -(1 + 0x1p-8)
	}
	return out
}

func TestWriterRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	f32 := randFloats(rng, 3*5)
	f16 := randFloats(rng, 7)
	bf16 := randFloats(rng, 2*3*2)
	f64 := randFloats(rng, 4)
	ints := []int32{-7, 0, 1 << 30, -1 << 31, 42}
	raw := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	scalar := []float32{3.5}
	meta := map[string]string{"format": "pt", "note": "a \"quoted\" value"}
	specs := []TensorSpec{
		{Name: "z.f32", DType: F32, Shape: []int{3, 5}},
		{Name: "a.f16", DType: F16, Shape: []int{7}},
		{Name: "m.bf16", DType: BF16, Shape: []int{2, 3, 2}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}},
		{Name: "f64", DType: F64, Shape: []int{4, 1}},
		{Name: "ids", DType: I32, Shape: []int{5}},
		{Name: "raw.u16", DType: safetensors.U16, Shape: []int{2, 2}},
		{Name: "scalar", DType: F32, Shape: []int{}},
	}
	w, err := Create(path, meta, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		w.WriteFloat32("z.f32", f32),
		w.WriteFloat32("a.f16", f16),
		w.WriteFloat32("m.bf16", bf16),
		w.WriteFloat32("empty", nil),
		w.WriteFloat32("f64", f64),
		w.WriteInt32("ids", ints),
		w.WriteRaw("raw.u16", raw),
		w.WriteFloat32("scalar", scalar),
		w.Commit(),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"out.safetensors"}) {
		t.Errorf("directory holds %v, want only the output", got)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v, want 0644", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(data); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata(); len(got) != len(meta) || got["format"] != "pt" || got["note"] != meta["note"] {
		t.Errorf("metadata %v, want %v", got, meta)
	}
	var wantNames []string
	for _, s := range specs {
		wantNames = append(wantNames, s.Name)
		info, ok := f.Info(s.Name)
		if !ok {
			t.Fatalf("tensor %q missing", s.Name)
		}
		if info.DType != s.DType || !slices.Equal(info.Shape, s.Shape) || info.File != path {
			t.Errorf("tensor %q: got %s %v in %s, want %s %v", s.Name, info.DType, info.Shape, info.File, s.DType, s.Shape)
		}
	}
	// Names follow storage order, which is declaration order.
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %v, want %v", got, wantNames)
	}

	checkFloats := func(name string, want []float32, conv func(float32) float32) {
		t.Helper()
		got, err := f.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		got64, err := f.ReadFloat64(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got64) != len(want) {
			t.Fatalf("%s: read %d and %d values, want %d", name, len(got), len(got64), len(want))
		}
		for i, v := range want {
			if w := conv(v); math.Float32bits(got[i]) != math.Float32bits(w) || got64[i] != float64(w) {
				t.Fatalf("%s[%d] = %v (float64 %v), want %v", name, i, got[i], got64[i], w)
			}
		}
	}
	same := func(v float32) float32 { return v }
	checkFloats("z.f32", f32, same)
	checkFloats("a.f16", f16, func(v float32) float32 { return F16ToFloat32(Float32ToF16(v)) })
	checkFloats("m.bf16", bf16, func(v float32) float32 { return BF16ToFloat32(Float32ToBF16(v)) })
	checkFloats("empty", nil, same)
	checkFloats("f64", f64, same)
	checkFloats("scalar", scalar, same)
	// F64 data is stored at full width.
	if got, err := f.ReadFloat64("f64"); err != nil || got[2] != float64(f64[2]) {
		t.Errorf("ReadFloat64(f64)[2] = %v, %v; want %v", got, err, f64[2])
	}
	gotInts, err := f.ReadInts("ids")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range ints {
		if gotInts[i] != int(v) {
			t.Errorf("ids[%d] = %d, want %d", i, gotInts[i], v)
		}
	}
	gotRaw, _, err := f.ReadRaw("raw.u16")
	if err != nil || !bytes.Equal(gotRaw, raw) {
		t.Errorf("ReadRaw(raw.u16) = %v, %v; want %v", gotRaw, err, raw)
	}

	// The reference implementation's stricter check (offsets contiguous from
	// zero, buffer fully used) accepts the file too, with the same bytes.
	st2, err := safetensors.Deserialize(data)
	if err != nil {
		t.Fatalf("reference reader rejects the file: %v", err)
	}
	for _, s := range specs {
		v, ok := st2.Tensor(s.Name)
		if !ok {
			t.Fatalf("reference reader: no tensor %q", s.Name)
		}
		mine, _, err := f.ReadRaw(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.Data(), mine) {
			t.Errorf("tensor %q: reference reader sees other bytes", s.Name)
		}
	}
}

func TestWriterHeaderAlignment(t *testing.T) {
	// Names of every length modulo 8 exercise all paddings.
	for n := 1; n <= 8; n++ {
		path := filepath.Join(t.TempDir(), "a.safetensors")
		name := strings.Repeat("x", n)
		w, err := Create(path, nil, []TensorSpec{{Name: name, DType: F16, Shape: []int{1}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFloat32(name, []float32{1}); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if hl := binary.LittleEndian.Uint64(data); hl%8 != 0 || int(hl)+8+2 != len(data) {
			t.Errorf("name length %d: header length %d, file %d bytes", n, hl, len(data))
		}
	}
}

// TestWriterErrors checks that every misuse fails with a message naming the
// file and tensor, and that nothing is left in the directory afterwards,
// whether or not the caller goes on to Commit or Abort.
func TestWriterErrors(t *testing.T) {
	specs := []TensorSpec{
		{Name: "a", DType: F32, Shape: []int{2, 2}},
		{Name: "b", DType: I32, Shape: []int{3}},
		{Name: "c", DType: BF16, Shape: []int{2}},
	}
	for _, tc := range []struct {
		name string
		run  func(w *Writer) error
		want []string
	}{
		{"out of order", func(w *Writer) error { return w.WriteFloat32("b", make([]float32, 3)) },
			[]string{`"b" written out of order`, `expected "a"`}},
		{"too few elements", func(w *Writer) error { return w.WriteFloat32("a", make([]float32, 3)) },
			[]string{`tensor "a"`, "got 3 elements", "needs 4"}},
		{"too many ints", func(w *Writer) error {
			if err := w.WriteFloat32("a", make([]float32, 4)); err != nil {
				return err
			}
			return w.WriteInt32("b", make([]int32, 4))
		}, []string{`tensor "b"`, "got 4 elements", "needs 3"}},
		{"int32 into float tensor", func(w *Writer) error { return w.WriteInt32("a", make([]int32, 4)) },
			[]string{`tensor "a" declared F32, written as I32`}},
		{"float32 into int tensor", func(w *Writer) error {
			if err := w.WriteFloat32("a", make([]float32, 4)); err != nil {
				return err
			}
			return w.WriteFloat32("b", make([]float32, 3))
		}, []string{`tensor "b"`, "I32"}},
		{"raw byte count", func(w *Writer) error { return w.WriteRaw("a", make([]byte, 15)) },
			[]string{`tensor "a"`, "got 15 bytes", "needs 16"}},
		{"raw out of order", func(w *Writer) error { return w.WriteRaw("c", make([]byte, 4)) },
			[]string{`"c" written out of order`}},
		{"undeclared after all", func(w *Writer) error {
			for _, err := range []error{
				w.WriteFloat32("a", make([]float32, 4)),
				w.WriteInt32("b", make([]int32, 3)),
				w.WriteFloat32("c", make([]float32, 2)),
			} {
				if err != nil {
					return err
				}
			}
			return w.WriteRaw("", nil)
		}, []string{`tensor ""`, "after all 3 declared tensors"}},
		{"missing tensors at commit", func(w *Writer) error {
			if err := w.WriteFloat32("a", make([]float32, 4)); err != nil {
				return err
			}
			return w.Commit()
		}, []string{"only 1 of 3 tensors written", `next: "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, finish := range []string{"commit", "abort", "none"} {
				dir := t.TempDir()
				path := filepath.Join(dir, "m.safetensors")
				w, err := Create(path, nil, specs)
				if err != nil {
					t.Fatal(err)
				}
				err = tc.run(w)
				if err == nil {
					t.Fatalf("%s: no error", tc.name)
				}
				for _, want := range append([]string{path}, tc.want...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %q does not contain %q", tc.name, err, want)
					}
				}
				// Once failed, the writer keeps failing with the first error.
				if err2 := w.WriteFloat32("a", make([]float32, 4)); err2 == nil || err2.Error() != err.Error() {
					t.Errorf("%s: write after failure returned %v, want %v", tc.name, err2, err)
				}
				switch finish {
				case "commit":
					if cerr := w.Commit(); cerr == nil || cerr.Error() != err.Error() {
						t.Errorf("%s: Commit after failure returned %v, want %v", tc.name, cerr, err)
					}
				case "abort":
					w.Abort()
					w.Abort()
				}
				if got := dirEntries(t, dir); len(got) != 0 {
					t.Errorf("%s (then %s): directory holds %v, want nothing", tc.name, finish, got)
				}
			}
		})
	}
}

func TestWriterAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	w, err := Create(path, nil, []TensorSpec{{Name: "a", DType: F32, Shape: []int{2}}, {Name: "b", DType: F32, Shape: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32("a", []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], ".m.safetensors.tmp-") {
		t.Errorf("while writing, directory holds %v, want one hidden temporary file", got)
	}
	w.Abort()
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("after Abort, directory holds %v", got)
	}
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort: no error")
	}
	if err := w.WriteFloat32("b", []float32{1}); err == nil {
		t.Error("write after Abort: no error")
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("after Commit on an aborted writer, directory holds %v", got)
	}
}

// TestWriterReplacesAtomically checks that Commit replaces an existing file
// and that an aborted write leaves the old one intact.
func TestWriterReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	write := func(v float32, commit bool) {
		w, err := Create(path, nil, []TensorSpec{{Name: "a", DType: F32, Shape: []int{1}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFloat32("a", []float32{v}); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			w.Abort()
		}
	}
	read := func() float32 {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		v, err := f.ReadFloat32("a")
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	write(1, true)
	write(2, false)
	if got := read(); got != 1 {
		t.Errorf("after aborted rewrite, a = %v, want 1", got)
	}
	write(3, true)
	if got := read(); got != 3 {
		t.Errorf("after committed rewrite, a = %v, want 3", got)
	}
	if err := WriteFileAtomic(path, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Errorf("WriteFileAtomic: file holds %q", b)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"m.safetensors"}) {
		t.Errorf("directory holds %v", got)
	}
}

func TestCreateInvalidSpecs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		specs []TensorSpec
		want  string
	}{
		{"duplicate", []TensorSpec{{Name: "a", DType: F32, Shape: []int{1}}, {Name: "a", DType: F32, Shape: []int{1}}}, `tensor "a" declared twice`},
		{"reserved name", []TensorSpec{{Name: "__metadata__", DType: F32, Shape: []int{1}}}, `reserved tensor name "__metadata__"`},
		{"negative dimension", []TensorSpec{{Name: "n", DType: F32, Shape: []int{2, -1}}}, `tensor "n": negative dimension`},
		{"unknown dtype", []TensorSpec{{Name: "d", DType: DType(200), Shape: []int{1}}}, `tensor "d": unknown dtype 200`},
		{"overflow", []TensorSpec{{Name: "o", DType: F32, Shape: []int{1 << 30, 1 << 30}}}, `tensor "o": shape [1073741824 1073741824] overflows`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "m.safetensors")
			_, err := Create(path, nil, tc.specs)
			checkInvalid(t, err, path, tc.want)
			if got := dirEntries(t, dir); len(got) != 0 {
				t.Errorf("%s: directory holds %v", tc.name, got)
			}
		})
	}
}

func TestCreateUnwritable(t *testing.T) {
	base := t.TempDir()
	notDir := filepath.Join(base, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "ro")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		filepath.Join(base, "missing", "m.safetensors"),
		filepath.Join(notDir, "m.safetensors"),
	}
	// The superuser may write into a read-only directory, so that case only
	// says something for other users; no one may create files in /proc.
	if os.Geteuid() != 0 {
		paths = append(paths, filepath.Join(readOnly, "m.safetensors"))
	}
	if runtime.GOOS == "linux" {
		paths = append(paths, "/proc/m.safetensors")
	}
	for _, p := range paths {
		w, err := Create(p, nil, []TensorSpec{{Name: "a", DType: F32, Shape: []int{1}}})
		if err == nil {
			w.Abort()
			t.Errorf("Create(%s): no error", p)
			continue
		}
		if !strings.HasPrefix(err.Error(), p+": creating output: ") {
			t.Errorf("Create(%s): error %q does not name the output", p, err)
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%s): an I/O failure is reported as invalid input: %v", p, err)
		}
		if err := WriteFileAtomic(p, []byte("x")); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("WriteFileAtomic(%s) = %v, want an error naming the path", p, err)
		}
	}
	if got := dirEntries(t, readOnly); len(got) != 0 {
		t.Errorf("read-only directory holds %v", got)
	}
}
