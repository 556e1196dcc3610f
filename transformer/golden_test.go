package transformer

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// goldenTol bounds ‖out − ref‖/‖ref‖ against Hugging Face's float32 outputs.
// A float32 forward differs from them by rounding only (about 1e-6); 1e-4
// leaves room for a different summation order without hiding real errors,
// which show up at 1e-3 and above.
const goldenTol = 1e-4

// goldenCase is one golden fixture: the model directory and the directory
// holding golden.safetensors.
type goldenCase struct {
	name     string
	model    string
	golden   string
	fullRows bool // hidden states cover the whole batch
}

// goldenCases resolves the fixtures. The tiny random models live in
// testdata/golden; the shipped checkpoints are read from ../shared.
func goldenCases(t *testing.T) []goldenCase {
	root := repoRoot(t)
	var cs []goldenCase
	for _, name := range []string{"bert", "gpt2", "llama-gqa-untied", "qwen2-bias-tied", "vit"} {
		d := filepath.Join(root, "testdata", "golden", name)
		cs = append(cs, goldenCase{name: name, model: d, golden: d, fullRows: true})
	}
	for _, name := range []string{"bytellama", "bytegpt2", "stories260K"} {
		cs = append(cs, goldenCase{name: name, model: "models/" + name, golden: "golden/" + name})
	}
	return cs
}

func TestForwardGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			m, g := tc.open(t)
			defer g.Close()
			in := goldenInput(t, g)
			out, err := m.Forward(in, Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			check := func(name string, got []float32) {
				t.Helper()
				want, err := g.ReadFloat32(name)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) < len(want) {
					t.Fatalf("%s: %d values, want at least %d", name, len(got), len(want))
				}
				if tc.fullRows && len(got) != len(want) {
					t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
				}
				e := relErr(got, want)
				t.Logf("%s: rel err %.2e", name, e)
				if e > goldenTol {
					t.Errorf("%s: rel err %.3e > %.0e", name, e, goldenTol)
				}
			}
			for _, name := range g.Names() {
				switch name {
				case "logits":
					check(name, out.Logits)
				case "last_hidden_state":
					check(name, out.LastHidden)
				case "pooler_output":
					check(name, out.Pooler)
				}
			}
			for i := range m.NumLayers() + 1 {
				name := fmt.Sprintf("hidden_states.%d", i)
				if _, ok := g.Info(name); !ok {
					t.Fatalf("golden file lacks %s", name)
				}
				check(name, out.HiddenStates[i])
			}
			if len(out.HiddenStates) != m.NumLayers()+1 {
				t.Errorf("%d hidden states, want %d", len(out.HiddenStates), m.NumLayers()+1)
			}
		})
	}
}

// open loads the model of a fixture and opens its golden file, which the
// caller closes. Absent shared material skips the test (fails with CI=true).
func (gc goldenCase) open(t *testing.T) (*Model, *formats.File) {
	t.Helper()
	modelDir, goldenDir := gc.model, gc.golden
	if !filepath.IsAbs(modelDir) {
		modelDir, goldenDir = sharedDir(t, modelDir), sharedDir(t, goldenDir)
	}
	m, err := loadDir(t, modelDir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := formats.Open(filepath.Join(goldenDir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return m, g
}

// goldenInput reads the inputs stored in a golden file.
func goldenInput(t *testing.T, g *formats.File) *Input {
	t.Helper()
	in := &Input{}
	if info, ok := g.Info("pixel_values"); ok {
		px, err := g.ReadFloat32("pixel_values")
		if err != nil {
			t.Fatal(err)
		}
		in.Batch, in.Pixels = info.Shape[0], px
		return in
	}
	info, ok := g.Info("input_ids")
	if !ok {
		t.Fatal("golden file has neither input_ids nor pixel_values")
	}
	ids, err := g.ReadInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	in.Batch, in.Seq, in.IDs = info.Shape[0], info.Shape[1], ids
	if _, ok := g.Info("token_type_ids"); ok {
		if in.TokenTypes, err = g.ReadInts("token_type_ids"); err != nil {
			t.Fatal(err)
		}
	}
	return in
}
