package vlora

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// TestDetectStackRealModels finds the layer stack of every shipped model.
func TestDetectStackRealModels(t *testing.T) {
	cases := []struct {
		dir            string
		prefix         string
		layers, nsuf   int
		passthroughHas string
	}{
		{"models/bytellama", "model.layers.", 8, 9, "lm_head.weight"},
		{"models/bytegpt2", "transformer.h.", 8, 12, "transformer.wte.weight"},
		{"models/stories260K", "model.layers.", 5, 9, "model.norm.weight"},
		{"golden/llama-gqa-untied", "model.layers.", 4, 9, "lm_head.weight"},
		{"golden/qwen2-bias-tied", "model.layers.", 4, 12, "model.embed_tokens.weight"},
		{"golden/gpt2", "transformer.h.", 4, 12, "transformer.wpe.weight"},
		{"golden/bert", "encoder.layer.", 4, 16, "pooler.dense.weight"},
		{"golden/vit", "vit.encoder.layer.", 4, 16, "classifier.weight"},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			ck, err := formats.OpenCheckpoint(testenv.Shared(t, tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			st, err := DetectStack(ck.Names(), infoOf(ck))
			if err != nil {
				t.Fatal(err)
			}
			if st.Prefix != tc.prefix || st.NumLayers != tc.layers || len(st.Suffixes) != tc.nsuf {
				t.Errorf("got prefix %q, %d layers, %d suffixes %v", st.Prefix, st.NumLayers, len(st.Suffixes), st.Suffixes)
			}
			if _, _, in := st.Split(tc.passthroughHas); in {
				t.Errorf("%s wrongly inside the stack", tc.passthroughHas)
			}
			n := 0
			for _, name := range ck.Names() {
				if _, _, in := st.Split(name); in {
					n++
				}
			}
			if n != st.NumLayers*len(st.Suffixes) {
				t.Errorf("%d stack tensors, want %d", n, st.NumLayers*len(st.Suffixes))
			}
		})
	}
}

func infoOf(ck *formats.Checkpoint) func(string) TensorShape {
	return func(n string) TensorShape {
		ti, _ := ck.Info(n)
		return TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	}
}

// TestDetectStackErrors checks the errors for inconsistent stacks.
func TestDetectStackErrors(t *testing.T) {
	shape := func(s []int) func(string) TensorShape {
		return func(string) TensorShape { return TensorShape{Shape: s, DType: "F32"} }
	}
	cases := []struct {
		names []string
		info  func(string) TensorShape
		want  string
	}{
		{[]string{"a.weight", "b.weight"}, shape([]int{2}), "no repeated layer stack"},
		{[]string{"h.0.w", "h.1.w", "h.1.b"}, shape([]int{2}), "layer 0 is missing tensor h.0.b"},
		{[]string{"h.0.w", "h.2.w"}, shape([]int{2}), "layer 1 is missing"},
		{[]string{"h.0.w"}, shape([]int{2}), "only 1 layer"},
		{[]string{"h.0.w", "h.1.w"}, func(n string) TensorShape {
			if strings.HasPrefix(n, "h.1") {
				return TensorShape{Shape: []int{3}, DType: "F32"}
			}
			return TensorShape{Shape: []int{2}, DType: "F32"}
		}, "has shape [3]"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			_, err := DetectStack(tc.names, tc.info)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: error %v, want %q", tc.names, err, tc.want)
			}
		})
	}
}

func TestCompounds(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want string
	}{
		{8, 8, "[[0 1 2 3 4 5 6 7]]"},
		{8, 3, "[[0 1 2] [3 4 5] [6 7]]"},
		{5, 1, "[[0] [1] [2] [3] [4]]"},
		{3, 10, "[[0 1 2]]"},
	} {
		t.Run(fmt.Sprintf("n=%d k=%d", tc.n, tc.k), func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprint(Compounds(tc.n, tc.k)); got != tc.want {
				t.Errorf("Compounds(%d,%d) = %s, want %s", tc.n, tc.k, got, tc.want)
			}
		})
	}
}

// validManifest returns a small consistent manifest.
func validManifest() *Manifest {
	m := &Manifest{
		Format: FormatName, FormatVersion: FormatVersion, LayerPrefix: "h.", NumLayers: 3,
		Suffixes:     []TensorDesc{{Name: "w", Shape: []int{4, 6}, DType: "F32"}, {Name: "b", Shape: []int{4}, DType: "F32"}},
		Passthrough:  []TensorDesc{{Name: "emb", Shape: []int{10, 4}, DType: "F32"}},
		CompoundSize: 2, Compounds: Compounds(3, 2), BaseMode: BaseFirst, DType: "F32",
	}
	for _, l := range []int{1} {
		m.Increments = append(m.Increments, IncrementDesc{Layer: l, Suffix: "w", Kind: KindLowRank, Rank: 2},
			IncrementDesc{Layer: l, Suffix: "b", Kind: KindDense})
	}
	return m
}

func TestManifestValidate(t *testing.T) {
	if err := validManifest().Validate(); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	cases := []struct {
		edit func(m *Manifest)
		want string
	}{
		{func(m *Manifest) { m.Format = "x" }, "format"},
		{func(m *Manifest) { m.FormatVersion = 99 }, "version"},
		{func(m *Manifest) { m.BaseMode = "median" }, "base mode"},
		{func(m *Manifest) { m.Compounds = [][]int{{0}, {1, 2}} }, "compound"},
		{func(m *Manifest) { m.Increments[0].Rank = 5 }, "rank 5 out of range"},
		{func(m *Manifest) { m.Increments = m.Increments[:1] }, "layer 1 b"},
		{func(m *Manifest) { m.Increments[1].Kind = KindLowRank }, "1-D"},
		{func(m *Manifest) { m.Increments[0].Layer = 0 }, "layer 0"},
		{func(m *Manifest) { m.Increments[0].Suffix = "zz" }, "unknown suffix"},
	}
	for i, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			m := validManifest()
			tc.edit(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("case %d: error %v, want %q", i, err, tc.want)
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := validManifest()
	s, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.StorageOrder(), m.StorageOrder()) {
		t.Errorf("storage order changed: %v", got.StorageOrder())
	}
	want := []string{"emb", "vlora.compounds.0.w.base", "vlora.compounds.0.b.base", "vlora.layers.1.w.lora_B",
		"vlora.layers.1.w.lora_A", "vlora.layers.1.b.delta", "vlora.compounds.1.w.base", "vlora.compounds.1.b.base"}
	if !slices.Equal(m.StorageOrder(), want) {
		t.Errorf("storage order %v, want %v", m.StorageOrder(), want)
	}
	exp := m.ExpectedTensors()
	if fmt.Sprint(exp["vlora.layers.1.w.lora_A"]) != "[2 6]" || fmt.Sprint(exp["vlora.layers.1.w.lora_B"]) != "[4 2]" {
		t.Errorf("factor shapes %v %v", exp["vlora.layers.1.w.lora_A"], exp["vlora.layers.1.w.lora_B"])
	}
}

// FuzzManifest feeds arbitrary JSON to ParseManifest: it must never panic,
// and an accepted manifest must yield a consistent storage plan.
func FuzzManifest(f *testing.F) {
	s, _ := validManifest().Marshal()
	f.Add(s)
	f.Add(`{"format":"vlora"}`)
	f.Add(`{"format":"vlora","format_version":1,"num_layers":-1}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseManifest(s)
		if err != nil {
			return
		}
		exp := m.ExpectedTensors()
		order := m.StorageOrder()
		if len(order) != len(exp) {
			t.Fatalf("storage order has %d names, expected tensors %d", len(order), len(exp))
		}
		for _, n := range order {
			shape, ok := exp[n]
			if !ok {
				t.Fatalf("%s in storage order but not expected", n)
			}
			for _, d := range shape {
				if d < 0 {
					t.Fatalf("%s has negative dimension", n)
				}
			}
		}
	})
}
