package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// badFiles are malformed safetensors files, each with the fragments its error
// message must contain (besides the file name).
var badFiles = []struct {
	name string
	data []byte
	want []string
}{
	{"empty file", nil, []string{"file is 0 bytes, too short"}},
	{"truncated length", []byte{8, 0, 0, 0}, []string{"file is 4 bytes, too short"}},
	{"absurd header length", binary.LittleEndian.AppendUint64(nil, 1<<62), []string{"header length 4611686018427387904 exceeds the 100000000-byte limit"}},
	{"huge header length", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), []string{"exceeds the 100000000-byte limit"}},
	{"header length past EOF", rawFile("{}", nil)[:9], []string{"header length 2 runs past the end of the file (9 bytes)"}},
	{"empty header", rawFile("", nil), []string{"header is not valid JSON"}},
	{"blank header", rawFile("        ", nil), []string{"header is not valid JSON"}},
	{"non-JSON header", rawFile("not json", nil), []string{"header is not valid JSON"}},
	{"truncated JSON", rawFile(`{"a":{"dtype":"F32"`, nil), []string{"header is not valid JSON"}},
	{"trailing garbage", rawFile(`{} x`, nil), []string{"not valid safetensors JSON", "after top-level value"}},
	{"array header", rawFile(`[1,2]`, nil), []string{"header is not a JSON object"}},
	{"null header", rawFile(`null`, nil), []string{"header is not a JSON object"}},
	{"truncated data", rawFile(header(nil,
		entry{"w", "F32", []uint64{2, 2}, [2]uint64{0, 16}}), make([]byte, 12)),
		[]string{`tensor "w"`, "data offsets [0, 16) run past the end of the data (12 bytes)"}},
	{"offsets past EOF", rawFile(header(nil,
		entry{"a", "F32", []uint64{1}, [2]uint64{0, 4}},
		entry{"far", "F32", []uint64{1}, [2]uint64{1 << 40, 1<<40 + 4}}), make([]byte, 4)),
		[]string{`tensor "far"`, "run past the end of the data"}},
	{"offset near 2^64", rawFile(header(nil,
		entry{"x", "U8", []uint64{1}, [2]uint64{math.MaxUint64 - 1, math.MaxUint64}}), make([]byte, 4)),
		[]string{`tensor "x"`, "run past the end of the data"}},
	{"overlap", rawFile(header(nil,
		entry{"first", "F32", []uint64{2}, [2]uint64{0, 8}},
		entry{"second", "F32", []uint64{2}, [2]uint64{4, 12}}), make([]byte, 12)),
		[]string{`tensors "first" (bytes [0, 8)) and "second" (bytes [4, 12)) overlap`}},
	{"nested overlap", rawFile(header(nil,
		entry{"big", "F32", []uint64{4}, [2]uint64{0, 16}},
		entry{"empty", "F32", []uint64{0}, [2]uint64{4, 4}},
		entry{"inner", "F32", []uint64{1}, [2]uint64{8, 12}}), make([]byte, 16)),
		[]string{`"big"`, `"empty"`, "overlap"}},
	{"overlap past an empty tensor", rawFile(header(nil,
		entry{"a", "F32", []uint64{3}, [2]uint64{0, 12}},
		entry{"b", "F32", []uint64{0}, [2]uint64{12, 12}},
		entry{"c", "F32", []uint64{1}, [2]uint64{8, 12}}), make([]byte, 12)),
		[]string{`"a"`, `"c"`, "overlap"}},
	{"same offsets", rawFile(header(nil,
		entry{"p", "F16", []uint64{2}, [2]uint64{0, 4}},
		entry{"q", "F16", []uint64{2}, [2]uint64{0, 4}}), make([]byte, 4)),
		[]string{`"p"`, `"q"`, "overlap"}},
	{"size mismatch", rawFile(header(nil,
		entry{"w", "BF16", []uint64{3, 2}, [2]uint64{0, 8}}), make([]byte, 8)),
		[]string{`tensor "w": dtype BF16 × shape [3 2] needs 12 bytes but offsets [0, 8) hold 8`}},
	{"shape overflow 64 bits", rawFile(header(nil,
		entry{"o", "F32", []uint64{1 << 32, 1 << 32, 2}, [2]uint64{0, 0}}), nil),
		[]string{`tensor "o": shape [4294967296 4294967296 2] overflows`}},
	{"shape over element limit", rawFile(header(nil,
		entry{"o", "U8", []uint64{1 << 25, 1 << 24}, [2]uint64{0, 0}}), nil),
		[]string{`tensor "o": shape [33554432 16777216] overflows`}},
	{"huge dimension after zero", rawFile(header(nil,
		entry{"z", "F32", []uint64{0, 1 << 63}, [2]uint64{0, 0}}), nil),
		[]string{`tensor "z": shape [0 9223372036854775808] overflows`}},
	{"shape product wraps to zero", rawFile(header(nil,
		entry{"wrap", "F32", []uint64{1 << 32, 1 << 32}, [2]uint64{0, 0}}), nil),
		[]string{`tensor "wrap"`, "overflows"}},
	{"duplicate tensor", rawFile(`{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		[]string{`tensor "t" is listed twice`}},
	{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil),
		[]string{`__metadata__ is listed twice`}},
	{"duplicate key in entry", rawFile(`{"t":{"dtype":"F32","shape":[1],"dtype":"F16","data_offsets":[0,4]}}`, make([]byte, 4)),
		[]string{`tensor "t": key "dtype" is listed twice`}},
	{"reversed offsets", rawFile(header(nil,
		entry{"r", "F32", []uint64{1}, [2]uint64{8, 4}}), make([]byte, 8)),
		[]string{`tensor "r": data offsets [8, 4) are reversed`}},
	{"unknown dtype", rawFile(header(nil,
		entry{"f8", "F8_E4M3", []uint64{1}, [2]uint64{0, 1}}), make([]byte, 1)),
		[]string{`tensor "f8"`, `"F8_E4M3"`}},
	{"lower-case dtype", rawFile(header(nil,
		entry{"l", "f32", []uint64{1}, [2]uint64{0, 4}}), make([]byte, 4)),
		[]string{`tensor "l"`, `"f32"`}},
	{"negative dimension", rawFile(`{"n":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		[]string{`tensor "n"`, `"shape"`}},
	{"fractional offset", rawFile(`{"n":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}`, make([]byte, 4)),
		[]string{`tensor "n"`, `"data_offsets"`}},
	{"three offsets", rawFile(`{"n":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)),
		[]string{`tensor "n"`, `"data_offsets"`}},
	{"missing offsets", rawFile(`{"n":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)),
		[]string{`tensor "n"`}},
	{"extra key", rawFile(`{"n":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)),
		[]string{`tensor "n"`, "expected 3 keys"}},
	{"null entry", rawFile(`{"n":null}`, nil), []string{`tensor "n": entry null is not a JSON object`}},
	{"number entry", rawFile(`{"n" : 1 }`, nil), []string{`tensor "n": entry 1 is not a JSON object`}},
	{"array entry", rawFile(`{"n":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}`, nil),
		[]string{`tensor "n": entry [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1 is not a JSON object`}},
	{"non-string metadata", rawFile(`{"__metadata__":{"k":1}}`, nil), []string{"__metadata__", `"k"`}},
	{"metadata not an object", rawFile(`{"__metadata__":"x"}`, nil), []string{`__metadata__: entry "x" is not a JSON object`}},
}

func TestNewFileRejects(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.name, func(t *testing.T) {
			const name = "bad.safetensors"
			f, err := NewFile(name, bytes.NewReader(tc.data), int64(len(tc.data)))
			if f != nil {
				t.Errorf("got a file with tensors %v", f.Names())
			}
			checkInvalid(t, err, append([]string{name + ": "}, tc.want...)...)
			// One error, not a chain of repeated prefixes.
			if n := strings.Count(err.Error(), name); n != 1 {
				t.Errorf("error %q names the file %d times", err, n)
			}
			// Open reports the same problem with the file's path.
			p := writeTemp(t, name, tc.data)
			_, err = Open(p)
			checkInvalid(t, err, append([]string{p + ": "}, tc.want...)...)
		})
	}
}

func TestNewFileAccepts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte
		names []string // storage order
		meta  map[string]string
	}{
		{"no tensors", rawFile(`{}`, nil), nil, nil},
		{"padded header", rawFile(`{}      `, nil), nil, nil},
		{"spaced JSON", rawFile(" { \"a\" :\n { \"dtype\" : \"U8\", \"shape\" : [ 1 ] , \"data_offsets\":[0 ,1] } } ", []byte{7}), []string{"a"}, nil},
		{"metadata only", rawFile(`{"__metadata__":{"format":"pt"}}`, nil), nil, map[string]string{"format": "pt"}},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), nil, map[string]string{}},
		// An empty tensor at the start of another is contiguous, not an overlap.
		{"empty tensor before another at the same offset", rawFile(header(nil,
			entry{"a", "F32", []uint64{2}, [2]uint64{0, 8}},
			entry{"b", "F32", []uint64{0}, [2]uint64{0, 0}}), make([]byte, 8)),
			[]string{"b", "a"}, nil},
		{"empty tensors at the end", rawFile(header(nil,
			entry{"a", "F16", []uint64{1}, [2]uint64{0, 2}},
			entry{"z", "F16", []uint64{3, 0}, [2]uint64{2, 2}},
			entry{"y", "F16", []uint64{0}, [2]uint64{2, 2}}), make([]byte, 2)),
			[]string{"a", "y", "z"}, nil},
		{"header order differs from storage order", rawFile(header(map[string]string{"k": "v"},
			entry{"second", "I32", []uint64{1}, [2]uint64{4, 8}},
			entry{"first", "F32", nil, [2]uint64{0, 4}}), make([]byte, 8)),
			[]string{"first", "second"}, map[string]string{"k": "v"}},
		{"gap and trailing bytes", rawFile(header(nil,
			entry{"a", "U8", []uint64{1}, [2]uint64{2, 3}}), make([]byte, 6)),
			[]string{"a"}, nil},
		{"zero dimension with large ones", rawFile(header(nil,
			entry{"z", "F64", []uint64{1 << 20, 0, 1 << 20}, [2]uint64{0, 0}}), nil),
			[]string{"z"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Run(tc.name, func(t *testing.T) {
				f, err := NewFile("ok.safetensors", bytes.NewReader(tc.data), int64(len(tc.data)))
				if err != nil {
					t.Fatal(err)
				}
				if got := f.Names(); !slices.Equal(got, tc.names) {
					t.Errorf("Names() = %v, want %v", got, tc.names)
				}
				if got := f.Metadata(); len(got) != len(tc.meta) || (tc.meta != nil && got["k"] != tc.meta["k"]) {
					t.Errorf("Metadata() = %v, want %v", got, tc.meta)
				}
				for _, name := range f.Names() {
					info, _ := f.Info(name)
					raw, _, err := f.ReadRaw(name)
					if err != nil || int64(len(raw)) != info.Size {
						t.Errorf("ReadRaw(%q) = %d bytes, %v; want %d", name, len(raw), err, info.Size)
					}
					if IsFloat(info.DType) {
						v, err := f.ReadFloat32(name)
						if err != nil || len(v) != info.NumElements() {
							t.Errorf("ReadFloat32(%q) = %d values, %v; want %d", name, len(v), err, info.NumElements())
						}
					}
				}
			})
		})
	}
}

func TestReadErrors(t *testing.T) {
	data := rawFile(header(nil,
		entry{"ids", "I64", []uint64{1}, [2]uint64{0, 8}},
		entry{"w", "F32", []uint64{1}, [2]uint64{8, 12}}), make([]byte, 12))
	f, err := NewFile("m.safetensors", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadFloat32("ids")
	checkInvalid(t, err, `m.safetensors: tensor "ids"`, "I64 is not a floating-point type")
	_, err = f.ReadFloat64("ids")
	checkInvalid(t, err, `m.safetensors: tensor "ids"`, "I64 is not a floating-point type")
	_, err = f.ReadInts("w")
	checkInvalid(t, err, `m.safetensors: tensor "w"`, "F32 is not an integer type")
	for _, read := range []func(string) error{
		func(n string) error { _, err := f.ReadFloat32(n); return err },
		func(n string) error { _, err := f.ReadFloat64(n); return err },
		func(n string) error { _, err := f.ReadInts(n); return err },
		func(n string) error { _, _, err := f.ReadRaw(n); return err },
	} {
		checkInvalid(t, read("nope"), `m.safetensors`, `no tensor "nope"`)
	}
	if _, ok := f.Info("nope"); ok {
		t.Error(`Info("nope") found a tensor`)
	}
}

// eofReaderAt returns io.EOF along with a full read that reaches the end of
// the data, as io.ReaderAt allows, and fails reads at a chosen offset.
type eofReaderAt struct {
	data   []byte
	failAt int64
}

var errDisk = errors.New("disk error")

func (r eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off == r.failAt {
		return 0, errDisk
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if off+int64(n) == int64(len(r.data)) {
		return n, io.EOF
	}
	return n, nil
}

func TestReaderAtContract(t *testing.T) {
	data := rawFile(header(nil, entry{"w", "F32", []uint64{2}, [2]uint64{0, 8}}), nil)
	data = append(data, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40)
	hl := int64(binary.LittleEndian.Uint64(data))
	f, err := NewFile("m", eofReaderAt{data, -1}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.ReadFloat32("w"); err != nil || !slices.Equal(v, []float32{1, 2}) {
		t.Errorf("ReadFloat32 = %v, %v; want [1 2]", v, err)
	}
	// I/O failures are reported with the file (and tensor) but are not
	// invalid input.
	for _, tc := range []struct {
		failAt int64
		want   string
	}{
		{0, "m: reading header length: disk error"},
		{8, "m: reading header: disk error"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := NewFile("m", eofReaderAt{data, tc.failAt}, int64(len(data)))
			if err == nil || err.Error() != tc.want || !errors.Is(err, errDisk) || errors.Is(err, ErrInvalid) {
				t.Errorf("fail at %d: got %v, want %q", tc.failAt, err, tc.want)
			}
		})
	}
	f, err = NewFile("m", eofReaderAt{data, 8 + hl}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFloat32("w"); err == nil || err.Error() != `m: tensor "w": disk error` || errors.Is(err, ErrInvalid) {
		t.Errorf("data read failure: got %v", err)
	}
	// A size larger than the data makes reads short.
	f, err = NewFile("m", bytes.NewReader(data[:len(data)-1]), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFloat32("w"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short read: got %v, want io.ErrUnexpectedEOF", err)
	}
}
