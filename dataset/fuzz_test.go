package dataset

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// fuzzSeedFile writes a small data file with the given tensors and returns
// its bytes.
func fuzzSeedFile(f *testing.F, specs []formats.TensorSpec, ints map[string][]int32, floats map[string][]float32) []byte {
	p := filepath.Join(f.TempDir(), "seed.safetensors")
	w, err := formats.Create(p, nil, specs)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range specs {
		if v, ok := ints[s.Name]; ok {
			err = w.WriteInt32(s.Name, v)
		} else {
			err = w.WriteFloat32(s.Name, floats[s.Name])
		}
		if err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDataFile loads arbitrary bytes as a data file (with and without a
// labels tensor). Load must never panic; a rejected file gives an error
// wrapping formats.ErrInvalid and naming the file; an accepted one holds
// exactly N×T token ids (or N×C×H×W finite pixels) and, when asked, N
// labels, and CheckRange decides every id against a vocabulary.
func FuzzDataFile(f *testing.F) {
	f.Add(fuzzSeedFile(f, []formats.TensorSpec{{Name: "tokens", DType: formats.I32, Shape: []int{2, 3}}},
		map[string][]int32{"tokens": {1, 2, 3, 4, 5, 6}}, nil), "")
	f.Add(fuzzSeedFile(f, []formats.TensorSpec{{Name: "input_ids", DType: formats.I32, Shape: []int{1, 2}},
		{Name: "token_type_ids", DType: formats.I32, Shape: []int{1, 2}}, {Name: "labels", DType: formats.I32, Shape: []int{1}}},
		map[string][]int32{"input_ids": {7, -1}, "token_type_ids": {0, 1}, "labels": {3}}, nil), "labels")
	f.Add(fuzzSeedFile(f, []formats.TensorSpec{{Name: "pixel_values", DType: formats.F32, Shape: []int{1, 1, 2, 2}}},
		nil, map[string][]float32{"pixel_values": {0, 1, 2, 3}}), "")
	f.Add(fuzzSeedFile(f, []formats.TensorSpec{{Name: "tokens", DType: formats.F32, Shape: []int{1, 2}}},
		nil, map[string][]float32{"tokens": {0.5, 1}}), "")
	f.Add([]byte("not a safetensors file"), "labels")
	f.Fuzz(func(t *testing.T, data []byte, labels string) {
		p := filepath.Join(t.TempDir(), "data.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Load(context.Background(), p, LoadOptions{Labels: labels})
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if d.N < 1 {
			t.Fatalf("accepted an empty data set")
		}
		if d.IsImages() {
			if len(d.Pixels) != d.N*d.C*d.H*d.W {
				t.Fatalf("%d pixels for [%d %d %d %d]", len(d.Pixels), d.N, d.C, d.H, d.W)
			}
			for _, v := range d.Pixels {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("accepted a non-finite pixel")
				}
			}
		} else if len(d.IDs) != d.N*d.T || (d.TokenTypes != nil && len(d.TokenTypes) != len(d.IDs)) {
			t.Fatalf("%d ids, %d token types for [%d %d]", len(d.IDs), len(d.TokenTypes), d.N, d.T)
		}
		if labels != "" && len(d.Labels) != d.N {
			t.Fatalf("%d labels for %d items", len(d.Labels), d.N)
		}
		if err := d.CheckRange(16, 2); err == nil {
			for _, id := range d.IDs {
				if id < 0 || id >= 16 {
					t.Fatalf("CheckRange accepted id %d outside [0,16)", id)
				}
			}
		} else if !errors.Is(err, formats.ErrInvalid) {
			t.Fatalf("CheckRange error %q does not wrap ErrInvalid", err)
		}
	})
}
