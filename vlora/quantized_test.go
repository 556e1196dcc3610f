package vlora

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
)

// randomModel returns validManifest's model with random tensors.
func randomModel(t *testing.T) *Model {
	t.Helper()
	mf := validManifest()
	rng := rand.New(rand.NewPCG(1, 2))
	tensors := map[string]*Tensor{}
	for name, shape := range mf.ExpectedTensors() {
		d := make([]float32, NumElements(shape))
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
		tensors[name] = &Tensor{Data: d, Shape: shape}
	}
	m, err := New(mf, tensors)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testPlan gives each family a different scheme, groups that cross row
// ends included.
var testPlan = QuantPlan{
	Bases:       quant.Scheme{Bits: 4, GroupSize: 8, Full: true},
	Factors:     quant.Scheme{Bits: 3},
	Passthrough: quant.Scheme{Bits: 8},
}

// writeV1 writes m as format version 1 files were written: every tensor in
// the manifest's float dtype, no quantization.
func writeV1(t *testing.T, m *Model, path string) {
	t.Helper()
	mf := *m.Manifest
	mf.FormatVersion = 1
	js, err := mf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var specs []formats.TensorSpec
	for _, n := range mf.StorageOrder() {
		specs = append(specs, formats.TensorSpec{Name: n, DType: formats.F32, Shape: m.Tensors[n].Shape})
	}
	w, err := formats.Create(path, map[string]string{ManifestKey: js}, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range mf.StorageOrder() {
		if err := w.WriteFloat32(n, m.Tensors[n].Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestQuantizedSaveLoad saves a model under a plan and checks the file
// (packed U8 codes and F16 scales for 2-D tensors, F32 for 1-D ones,
// byte counts as Storage accounts them) and that loading gives exactly the
// fake quantization of every quantized tensor and the float ones unchanged.
func TestQuantizedSaveLoad(t *testing.T) {
	m := randomModel(t)
	orig := map[string][]float32{}
	for n, tn := range m.Tensors {
		orig[n] = slices.Clone(tn.Data)
	}
	m.Manifest.Quant = &testPlan
	path := filepath.Join(t.TempDir(), FileName)
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	f, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fileBits int64
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		fileBits += info.Size * 8
		switch {
		case strings.HasSuffix(n, ScalesSuffix):
			if info.DType != formats.F16 {
				t.Errorf("%s: %s, want F16", n, info.DType)
			}
		case len(m.Tensors[n].Shape) >= 2:
			if info.DType != formats.U8 {
				t.Errorf("%s: %s, want U8", n, info.DType)
			}
		default:
			if info.DType != formats.F32 {
				t.Errorf("%s: %s, want F32", n, info.DType)
			}
		}
	}
	fams, bits, err := m.Manifest.Storage()
	if err != nil {
		t.Fatal(err)
	}
	// Storage counts bits without the padding of the last code byte: at
	// most 7 bits per quantized tensor (6 here).
	if fileBits < bits || fileBits > bits+6*7 {
		t.Errorf("file holds %d bits of tensors, Storage says %d", fileBits, bits)
	}
	if len(fams) != 4 || fams[0].Scheme != "int4/g8/full" || fams[3].Scheme != "f32" {
		t.Errorf("families %+v", fams)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Manifest.FormatVersion != 2 || back.Manifest.Quant == nil || !reflect.DeepEqual(*back.Manifest.Quant, testPlan) {
		t.Fatalf("manifest version %d, plan %v", back.Manifest.FormatVersion, back.Manifest.Quant)
	}
	for n, tn := range back.Tensors {
		want := orig[n]
		if s, ok := back.SchemeOf(n); ok {
			rows, cols := Matrix(tn.Shape)
			want = make([]float32, len(tn.Data))
			quant.FakeQuant(want, orig[n], rows, cols, s)
		}
		if !slices.Equal(tn.Data, want) {
			t.Errorf("%s: loaded %v, want %v", n, tn.Data[:3], want[:3])
		}
	}
}

// TestVersion1FileReads reads a file in the layout of format version 1.
func TestVersion1FileReads(t *testing.T) {
	m := randomModel(t)
	path := filepath.Join(t.TempDir(), FileName)
	writeV1(t, m, path)
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Manifest.FormatVersion != 1 || back.Manifest.Quant != nil {
		t.Errorf("version %d, plan %v", back.Manifest.FormatVersion, back.Manifest.Quant)
	}
	for n, tn := range m.Tensors {
		if !slices.Equal(back.Tensors[n].Data, tn.Data) {
			t.Errorf("%s changed", n)
		}
	}
}

// TestQuantizedFileErrors checks that damaged quantized files and
// inconsistent manifests are refused with formats.ErrInvalid.
func TestQuantizedFileErrors(t *testing.T) {
	t.Run("plan in a version 1 manifest", func(t *testing.T) {
		mf := validManifest()
		mf.FormatVersion, mf.Quant = 1, &testPlan
		if err := mf.Validate(); err == nil || !strings.Contains(err.Error(), "version 2") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("invalid scheme", func(t *testing.T) {
		mf := validManifest()
		mf.Quant = &QuantPlan{Bases: quant.Scheme{Bits: 9}}
		if err := mf.Validate(); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("float tensor where codes are due", func(t *testing.T) {
		m := randomModel(t)
		path := filepath.Join(t.TempDir(), FileName)
		writeV1(t, m, path)
		// Rewrite the manifest as version 2 with a plan over float data.
		f, _ := formats.Open(path)
		mf := *m.Manifest
		mf.Quant = &testPlan
		js, _ := mf.Marshal()
		var specs []formats.TensorSpec
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			specs = append(specs, formats.TensorSpec{Name: n, DType: info.DType, Shape: info.Shape})
		}
		bad := filepath.Join(t.TempDir(), FileName)
		w, err := formats.Create(bad, map[string]string{ManifestKey: js}, specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Names() {
			raw, _, _ := f.ReadRaw(n)
			w.WriteRaw(n, raw)
		}
		f.Close()
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(bad); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("error %v, want ErrInvalid", err)
		}
	})
}

// TestPerTensorSchemes stores individual tensors in their own schemes over
// the family plan: the file is written as format version 3, each tensor
// reads back rounded in its own scheme (a zero scheme keeps it float), a
// version-2 manifest with per-tensor schemes is refused, and a file
// without them is still written as version 2.
func TestPerTensorSchemes(t *testing.T) {
	m := randomModel(t)
	orig := map[string][]float32{}
	var twoD []string
	for n, tn := range m.Tensors {
		orig[n] = slices.Clone(tn.Data)
		if len(tn.Shape) >= 2 {
			twoD = append(twoD, n)
		}
	}
	slices.Sort(twoD)
	if len(twoD) < 3 {
		t.Fatalf("fixture has %d 2-D tensors", len(twoD))
	}
	plan := QuantPlan{Factors: quant.Scheme{Bits: 8}, Tensors: map[string]quant.Scheme{
		twoD[0]: {Bits: 2, GroupSize: 16, Full: true},
		twoD[1]: {}, // float
		twoD[2]: {Bits: 5, GroupSize: 4},
	}}
	m.Manifest.Quant = &plan
	path := filepath.Join(t.TempDir(), FileName)
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Manifest.FormatVersion != 3 || !reflect.DeepEqual(*back.Manifest.Quant, plan) {
		t.Fatalf("version %d, plan %+v", back.Manifest.FormatVersion, back.Manifest.Quant)
	}
	for _, n := range twoD[:3] {
		s, ok := back.SchemeOf(n)
		if want := plan.Tensors[n]; s != want || ok != (want.Bits != 0) {
			t.Errorf("%s: scheme %v (%v), want %v", n, s, ok, want)
		}
		want := orig[n]
		if ok {
			rows, cols := Matrix(back.Tensors[n].Shape)
			want = make([]float32, len(want))
			quant.FakeQuant(want, orig[n], rows, cols, s)
		}
		if !slices.Equal(back.Tensors[n].Data, want) {
			t.Errorf("%s: read back differs from %v rounding", n, s)
		}
	}
	mf := *back.Manifest
	mf.FormatVersion = 2
	if err := mf.Validate(); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("version 2 with per-tensor schemes: %v", err)
	}
	m.Manifest.Quant = &QuantPlan{Factors: quant.Scheme{Bits: 8}}
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	if back, err = Load(path); err != nil || back.Manifest.FormatVersion != 2 {
		t.Errorf("family plan only: version %d, %v; want 2", back.Manifest.FormatVersion, err)
	}
}
