package gguf

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open and reads every tensor it
// accepts: malformed files must be refused with an error, never a panic or
// an allocation sized by the header alone.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "seed.gguf")
	w, err := Create(good, []KV{{"general.architecture", "llama"}, {"t", []string{"a", "b"}}},
		[]Tensor{{"a", []int{2, 32}, Q8_0}, {"b", []int{3}, F16}})
	if err != nil {
		f.Fatal(err)
	}
	w.WriteFloat32("a", make([]float32, 64))
	w.WriteFloat32("b", []float32{1, 2, 3})
	if err := w.Commit(); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(good)
	f.Add(seed)
	f.Add(seed[:40])
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.gguf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := Open(p)
		if err != nil {
			return
		}
		defer g.Close()
		for _, tt := range g.Tensors {
			if _, err := g.ReadFloat32(tt.Name); err != nil {
				t.Fatalf("accepted tensor %q unreadable: %v", tt.Name, err)
			}
		}
	})
}
