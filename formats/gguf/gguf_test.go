package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

func ramp(n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = scale * float32(math.Sin(float64(i)*0.37+0.1))
	}
	return x
}

// TestRoundTrip writes one tensor of every type with odd shapes and reads
// it back. Tolerances are each type's rounding: F32 exact; F16 half an ulp
// at 11 bits (2^-11 relative); BF16 2^-8 relative; Q8_0 half a code step,
// max|x|/127/2 per block, plus the F16 rounding of the scale (2^-11 of
// max|x| per code of at most 127).
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		shape []int
		tol   func(x, blockMax float32) float64
	}{
		{"f32", F32, []int{3, 5}, func(x, _ float32) float64 { return 0 }},
		{"f16", F16, []int{7}, func(x, _ float32) float64 { return math.Abs(float64(x)) / 2048 }},
		{"bf16", BF16, []int{2, 3, 5}, func(x, _ float32) float64 { return math.Abs(float64(x)) / 256 }},
		{"q8_0", Q8_0, []int{3, 64}, func(_, m float32) float64 { return float64(m)/127/2 + float64(m)/2048 }},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	var ts []Tensor
	data := map[string][]float32{}
	for _, tc := range tests {
		tt := Tensor{Name: tc.name, Shape: tc.shape, Type: tc.typ}
		ts = append(ts, tt)
		data[tc.name] = ramp(tt.Elements(), 3)
	}
	kvs := []KV{
		{"general.architecture", "llama"},
		{"a.u32", uint32(7)}, {"a.f32", float32(1.5)}, {"a.bool", true},
		{"a.strs", []string{"x", "", "<0x0A>"}}, {"a.f32s", []float32{-1, 2}}, {"a.i32s", []int32{3, -4}},
	}
	w, err := Create(path, kvs, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range ts {
		if err := w.WriteFloat32(tt.Name, data[tt.Name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, kv := range kvs {
		got := g.KV[kv.Key]
		switch want := kv.Value.(type) {
		case []string:
			if s, ok := got.([]string); !ok || len(s) != len(want) || s[2] != want[2] {
				t.Errorf("%s = %v, want %v", kv.Key, got, want)
			}
		case []float32, []int32:
		default:
			if got != want {
				t.Errorf("%s = %v, want %v", kv.Key, got, want)
			}
		}
	}
	for i, tc := range tests {
		info, ok := g.Tensor(tc.name)
		if !ok || info.Type != tc.typ || len(info.Shape) != len(tc.shape) || info.Offset%Alignment != 0 {
			t.Fatalf("%s: descriptor %+v", tc.name, info)
		}
		if g.Tensors[i].Name != tc.name {
			t.Errorf("tensor %d is %q, want %q", i, g.Tensors[i].Name, tc.name)
		}
		got, err := g.ReadFloat32(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		want := data[tc.name]
		for j := range want {
			b := j / BlockSize * BlockSize
			var m float32
			for _, v := range want[b:min(b+BlockSize, len(want))] {
				m = max(m, float32(math.Abs(float64(v))))
			}
			if d := math.Abs(float64(got[j] - want[j])); d > tc.tol(want[j], m) {
				t.Fatalf("%s[%d] = %v, want %v (error %g)", tc.name, j, got[j], want[j], d)
			}
		}
	}
}

// TestQ8_0Block checks one block against ggml's layout computed by hand:
// scale max|x|/127 as F16, then round-half-away-from-zero codes.
func TestQ8_0Block(t *testing.T) {
	x := make([]float32, BlockSize)
	x[0], x[1], x[2], x[3] = 127, -63.5, 0.5, -1.49
	dst := make([]byte, 2+BlockSize)
	quantizeQ8_0(dst, x)
	if d := formats.F16ToFloat32(uint16(dst[0]) | uint16(dst[1])<<8); d != 1 {
		t.Errorf("scale %v, want 1", d)
	}
	want := []int8{127, -64, 1, -1, 0}
	for i, w := range want {
		if int8(dst[2+i]) != w {
			t.Errorf("code %d = %d, want %d", i, int8(dst[2+i]), w)
		}
	}
	zero := make([]byte, 2+BlockSize)
	quantizeQ8_0(zero, make([]float32, BlockSize))
	for i, b := range zero {
		if b != 0 {
			t.Fatalf("all-zero block byte %d = %d", i, b)
		}
	}
}

// TestWriterRefuses checks the writer's refusals: each leaves no file.
func TestWriterRefuses(t *testing.T) {
	tests := []struct {
		name    string
		tensors []Tensor
		data    []float32
		create  bool // the error comes from Create
	}{
		{"q8_0 partial block", []Tensor{{"w", []int{2, 20}, Q8_0}}, nil, true},
		{"zero dimension", []Tensor{{"w", []int{0, 4}, F32}}, nil, true},
		{"repeated name", []Tensor{{"w", []int{1}, F32}, {"w", []int{1}, F32}}, nil, true},
		{"nan", []Tensor{{"w", []int{2}, F32}}, []float32{1, float32(math.NaN())}, false},
		{"f16 overflow", []Tensor{{"w", []int{2}, F16}}, []float32{1, 70000}, false},
		{"wrong length", []Tensor{{"w", []int{3}, F32}}, []float32{1, 2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.gguf")
			w, err := Create(path, nil, tc.tensors)
			if tc.create {
				if !errors.Is(err, formats.ErrInvalid) {
					t.Fatalf("Create: %v, want ErrInvalid", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteFloat32(tc.tensors[0].Name, tc.data); err == nil {
					t.Fatal("write accepted")
				}
				if err := w.Commit(); err == nil {
					t.Fatal("commit after a failed write succeeded")
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
		})
	}
}

// TestOpenRefuses checks that truncated and foreign files are refused with
// ErrInvalid.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gguf")
	w, err := Create(good, []KV{{"k", "v"}}, []Tensor{{"w", []int{4}, F32}})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFloat32("w", []float32{1, 2, 3, 4})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("GGUX"), raw[4:]...),
		"truncated": raw[:len(raw)-3],
		"header":    raw[:30],
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		if _, err := Open(p); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
