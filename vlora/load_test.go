package vlora

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/stage"
)

// TestLoadWithProgress checks that every tensor read is reported once, with
// a running count, and that the model equals Load's.
func TestLoadWithProgress(t *testing.T) {
	m := randomModel(t)
	path := filepath.Join(t.TempDir(), FileName)
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	var got []stage.Progress
	back, err := LoadWithProgress(path, func(p stage.Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(m.Tensors) {
		t.Fatalf("%d reports for %d tensors", len(got), len(m.Tensors))
	}
	seen := map[string]bool{}
	for i, p := range got {
		if p.Stage != stage.Read || p.Done != i+1 || p.Total != len(m.Tensors) {
			t.Errorf("report %d = %+v, want stage %q, %d of %d", i, p, stage.Read, i+1, len(m.Tensors))
		}
		if _, ok := m.Tensors[p.Item]; !ok || seen[p.Item] {
			t.Errorf("report %d names %q: not a tensor of the model, or named twice", i, p.Item)
		}
		seen[p.Item] = true
	}
	plain, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for n, tn := range plain.Tensors {
		if !slices.Equal(tn.Data, back.Tensors[n].Data) {
			t.Errorf("%s differs from Load's", n)
		}
	}
}
