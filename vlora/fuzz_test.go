package vlora

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// writeWithManifest writes a VLoRA file to dir whose tensors are those
// validManifest describes (small finite values) and whose manifest is the
// string manifest, and returns its path.
func writeWithManifest(t testing.TB, dir, manifest string) string {
	t.Helper()
	valid := validManifest()
	names := valid.StorageOrder()
	exp := valid.ExpectedTensors()
	specs := make([]formats.TensorSpec, len(names))
	for i, n := range names {
		specs[i] = formats.TensorSpec{Name: n, DType: formats.F32, Shape: exp[n]}
	}
	p := filepath.Join(dir, FileName)
	w, err := formats.Create(p, map[string]string{ManifestKey: manifest}, specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		data := make([]float32, NumElements(exp[n]))
		for j := range data {
			data[j] = float32((i+j)%7) / 8
		}
		if err := w.WriteFloat32(n, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzManifestTensors pairs an arbitrary manifest with a fixed set of stored
// tensors and loads the file. LoadFile must never panic; a rejected file
// gives an ErrInvalid error; an accepted one must materialize every layer
// of every suffix with the manifest's shapes and finite values, and
// ReadManifestFile (what inspect uses) must agree with LoadFile.
func FuzzManifestTensors(f *testing.F) {
	valid := validManifest()
	s, _ := valid.Marshal()
	f.Add(s)
	for _, edit := range []func(m *Manifest){
		func(m *Manifest) { m.Increments[0].Rank = 3 },
		func(m *Manifest) { m.Increments[0].Rank = 0 },
		func(m *Manifest) { m.NumLayers = 1 << 20 },
		func(m *Manifest) {
			m.Passthrough = append(m.Passthrough, TensorDesc{Name: "ghost", Shape: []int{3}, DType: "F32"})
		},
		func(m *Manifest) { m.Suffixes[0].Shape = []int{6, 4} },
		func(m *Manifest) { m.Increments[1].Kind = KindLowRank },
	} {
		m := validManifest()
		edit(m)
		js, _ := m.Marshal()
		f.Add(js)
	}
	f.Add(`{"format":"vlora","format_version":1,"num_layers":1e9}`)
	base, err := os.ReadFile(writeWithManifest(f, f.TempDir(), "{}"))
	if err != nil {
		f.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(base)
	var header map[string]any
	if err := json.Unmarshal(base[8:8+n], &header); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, manifest string) {
		// The same tensors with the fuzzed manifest, built in memory.
		header["__metadata__"] = map[string]string{ManifestKey: manifest}
		h, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		data := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		data = append(append(data, h...), base[8+n:]...)
		file, err := formats.NewFile("fuzz.vlora.safetensors", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("the container itself was rejected: %v", err)
		}
		mf, rerr := ReadManifestFile(file)
		m, err := LoadFile(file)
		if (rerr == nil) != (err == nil) {
			t.Fatalf("ReadManifestFile error %v, LoadFile error %v", rerr, err)
		}
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if mf.NumLayers != m.Manifest.NumLayers {
			t.Fatalf("ReadManifestFile and LoadFile disagree")
		}
		for l := range m.Manifest.NumLayers {
			for _, s := range m.Manifest.Suffixes {
				w, shape, err := m.LayerWeight(l, s.Name)
				if err != nil {
					t.Fatalf("layer %d %s: %v", l, s.Name, err)
				}
				if len(w) != NumElements(shape) {
					t.Fatalf("layer %d %s: %d values for shape %v", l, s.Name, len(w), shape)
				}
				for _, v := range w {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("layer %d %s: non-finite value", l, s.Name)
					}
				}
			}
		}
	})
}
