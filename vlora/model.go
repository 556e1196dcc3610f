package vlora

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// FileName is the name of the VLoRA file inside an output directory.
const FileName = "model.vlora.safetensors"

// Tensor is a dense float32 tensor in row-major order.
type Tensor struct {
	Data  []float32
	Shape []int
}

// Model is a VLoRA model held in memory: pass-through tensors, one base per
// compound and suffix, and the increments. All tensors are float32; the
// manifest's DType is what Save writes.
type Model struct {
	Manifest *Manifest
	// Tensors maps every stored tensor name (pass-through names and the
	// vlora.* names) to its data.
	Tensors map[string]*Tensor
	suffix  map[string]TensorDesc
	incs    map[string]*IncrementDesc
	// pass maps each pass-through tensor name to its description.
	pass  map[string]TensorDesc
	stack Stack
}

// ResolvePath accepts a VLoRA file or a directory holding FileName.
func ResolvePath(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		p := filepath.Join(path, FileName)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w: no %s in directory", path, formats.ErrInvalid, FileName)
		}
		return p, nil
	}
	return path, nil
}

// ReadManifest opens a VLoRA file lazily and returns its validated manifest
// and the open file.
func ReadManifest(path string) (*Manifest, *formats.File, error) {
	p, err := ResolvePath(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := formats.Open(p)
	if err != nil {
		return nil, nil, err
	}
	s, ok := f.Metadata()[ManifestKey]
	if !ok {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: not a VLoRA file (no %q in __metadata__)", p, formats.ErrInvalid, ManifestKey)
	}
	m, err := ParseManifest(s)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: %v", p, formats.ErrInvalid, err)
	}
	return m, f, nil
}

// Load reads a whole VLoRA file (or directory) into memory and checks that
// its tensors are exactly those the manifest describes.
func Load(path string) (*Model, error) {
	m, f, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tensors := map[string]*Tensor{}
	expect := m.ExpectedTensors()
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		if _, ok := expect[name]; !ok {
			if base, ok := strings.CutSuffix(name, ScalesSuffix); ok {
				if _, q := m.schemeOf(base, expect[base]); q {
					continue // read with its codes
				}
			}
			tensors[name] = &Tensor{Shape: info.Shape} // New reports it
			continue
		}
		shape := expect[name]
		if _, quantized := m.schemeOf(name, shape); quantized {
			info = &formats.TensorInfo{Shape: shape} // DecodeTensor checks the codes
		}
		if !slices.Equal(info.Shape, shape) {
			tensors[name] = &Tensor{Shape: info.Shape} // New reports it
			continue
		}
		data, err := DecodeTensor(f, m, name, shape)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path(), err)
		}
		tensors[name] = &Tensor{Data: data, Shape: shape}
	}
	model, err := New(m, tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	return model, nil
}

// New builds a model from a validated manifest and its stored tensors, and
// checks that the tensors are exactly those the manifest describes. The
// model keeps mf and tensors.
func New(mf *Manifest, tensors map[string]*Tensor) (*Model, error) {
	model := &Model{Manifest: mf, Tensors: tensors}
	model.index()
	expect := model.ExpectedTensors()
	for name := range tensors {
		if _, ok := expect[name]; !ok {
			return nil, fmt.Errorf("%w: tensor %q is not described by the manifest", formats.ErrInvalid, name)
		}
	}
	for name, shape := range expect {
		t, ok := tensors[name]
		if !ok {
			return nil, fmt.Errorf("%w: manifest expects tensor %q, which is missing", formats.ErrInvalid, name)
		}
		if !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, manifest implies %v", formats.ErrInvalid, name, t.Shape, shape)
		}
	}
	return model, nil
}

func (m *Model) index() {
	m.suffix = map[string]TensorDesc{}
	for _, s := range m.Manifest.Suffixes {
		m.suffix[s.Name] = s
	}
	m.stack = Stack{Prefix: m.Manifest.LayerPrefix, NumLayers: m.Manifest.NumLayers, Shapes: map[string][]int{}}
	for s, d := range m.suffix {
		m.stack.Shapes[s] = d.Shape
	}
	m.pass = make(map[string]TensorDesc, len(m.Manifest.Passthrough))
	for _, p := range m.Manifest.Passthrough {
		m.pass[p.Name] = p
	}
	m.incs = map[string]*IncrementDesc{}
	for i := range m.Manifest.Increments {
		inc := &m.Manifest.Increments[i]
		m.incs[incKey(inc.Layer, inc.Suffix)] = inc
	}
}

func incKey(l int, s string) string { return strconv.Itoa(l) + "|" + s }

// ExpectedTensors returns every stored tensor name the manifest implies, with
// its shape.
func (m *Model) ExpectedTensors() map[string][]int {
	return m.Manifest.ExpectedTensors()
}

// ExpectedTensors returns every stored tensor name the manifest implies, with
// its shape.
func (mf *Manifest) ExpectedTensors() map[string][]int {
	out := map[string][]int{}
	for _, p := range mf.Passthrough {
		out[p.Name] = p.Shape
	}
	suf := map[string][]int{}
	for _, s := range mf.Suffixes {
		suf[s.Name] = s.Shape
	}
	for c := range mf.Compounds {
		for _, s := range mf.Suffixes {
			out[BaseName(c, s.Name)] = s.Shape
		}
	}
	for _, inc := range mf.Increments {
		shape := suf[inc.Suffix]
		if inc.Kind == KindDense {
			out[DeltaName(inc.Layer, inc.Suffix)] = shape
			continue
		}
		rows, cols := Matrix(shape)
		out[LoraAName(inc.Layer, inc.Suffix)] = []int{inc.Rank, cols}
		out[LoraBName(inc.Layer, inc.Suffix)] = []int{rows, inc.Rank}
	}
	return out
}

// Compound returns the compound index and position of layer l.
func (m *Model) Compound(l int) (c, j int) {
	k := m.Manifest.CompoundSize
	return l / k, l % k
}

// Increment returns the description of layer l's increment for suffix, or
// nil when the layer uses its compound's base unchanged.
func (m *Model) Increment(l int, suffix string) *IncrementDesc {
	return m.incs[incKey(l, suffix)]
}

// LayerName returns the original name of suffix in layer l.
func (m *Model) LayerName(l int, suffix string) string {
	return m.Manifest.LayerPrefix + strconv.Itoa(l) + "." + suffix
}

// SplitName reports whether name is an original layer-stack tensor name and,
// if so, its layer and suffix.
func (m *Model) SplitName(name string) (layer int, suffix string, ok bool) {
	return m.stack.Split(name)
}

// LayerWeight materializes the dense weight of suffix in layer l:
// base + B·A, base + delta, or base, in a new slice.
func (m *Model) LayerWeight(l int, suffix string) ([]float32, []int, error) {
	desc, ok := m.suffix[suffix]
	if !ok {
		return nil, nil, fmt.Errorf("no layer %d tensor %q", l, suffix)
	}
	w := make([]float32, NumElements(desc.Shape))
	if err := m.LayerWeightInto(w, l, suffix); err != nil {
		return nil, nil, err
	}
	return w, slices.Clone(desc.Shape), nil
}

// LayerWeightInto writes the dense weight of suffix in layer l into dst,
// which must have the suffix's element count: dst = base + B·A,
// base + delta, or base. It is the one place where a layer is
// materialized, whether for loading, training or expanding.
func (m *Model) LayerWeightInto(dst []float32, l int, suffix string) error {
	desc, ok := m.suffix[suffix]
	if !ok || l < 0 || l >= m.Manifest.NumLayers {
		return fmt.Errorf("no layer %d tensor %q", l, suffix)
	}
	if n := NumElements(desc.Shape); len(dst) != n {
		return fmt.Errorf("layer %d %s: %w: destination holds %d values, want %d", l, suffix, formats.ErrInvalid, len(dst), n)
	}
	c, _ := m.Compound(l)
	copy(dst, m.Tensors[BaseName(c, suffix)].Data)
	inc := m.Increment(l, suffix)
	switch {
	case inc == nil:
	case inc.Kind == KindDense:
		for i, v := range m.Tensors[DeltaName(l, suffix)].Data {
			dst[i] += v
		}
	case inc.Rank > 0:
		rows, cols := Matrix(desc.Shape)
		a := m.Tensors[LoraAName(l, suffix)].Data
		b := m.Tensors[LoraBName(l, suffix)].Data
		kernels.Sgemm(false, false, rows, cols, inc.Rank, 1, b, inc.Rank, a, cols, 1, dst, cols)
	}
	return nil
}

// Tensor returns a dense tensor by its original (Hugging Face) name,
// materializing layer-stack weights. Pass-through tensors are returned
// without a copy.
func (m *Model) Tensor(name string) ([]float32, []int, error) {
	if l, s, ok := m.SplitName(name); ok {
		return m.LayerWeight(l, s)
	}
	if _, ok := m.pass[name]; ok {
		t := m.Tensors[name]
		return t.Data, t.Shape, nil
	}
	return nil, nil, fmt.Errorf("no tensor %q", name)
}

// IsPassthrough reports whether name is a tensor stored unchanged, outside
// the layer stack.
func (m *Model) IsPassthrough(name string) bool {
	_, ok := m.pass[name]
	return ok
}

// OriginalNames lists every tensor name of the original model, sorted.
func (m *Model) OriginalNames() []string {
	var out []string
	for _, p := range m.Manifest.Passthrough {
		out = append(out, p.Name)
	}
	for l := 0; l < m.Manifest.NumLayers; l++ {
		for _, s := range m.Manifest.Suffixes {
			out = append(out, m.LayerName(l, s.Name))
		}
	}
	sort.Strings(out)
	return out
}

// OriginalDType returns the dtype the original model stored name in.
func (m *Model) OriginalDType(name string) string {
	if _, s, ok := m.SplitName(name); ok {
		return m.suffix[s].DType
	}
	if p, ok := m.pass[name]; ok {
		return p.DType
	}
	return "F32"
}

// StoredParams counts every stored float.
func (m *Model) StoredParams() int64 {
	var n int64
	for _, t := range m.Tensors {
		n += int64(len(t.Data))
	}
	return n
}

// Save writes the model to path (a file name) in the manifest's dtype,
// through a temporary file and rename. Counts.ParamsStored and BytesStored
// are refreshed.
func (m *Model) Save(path string) error {
	dt, err := formats.ParseDType(m.Manifest.DType)
	if err != nil {
		return err
	}
	names := m.Manifest.StorageOrder()
	var specs []formats.TensorSpec
	var params int64
	for _, n := range names {
		t, ok := m.Tensors[n]
		if !ok {
			return fmt.Errorf("tensor %q missing from model", n)
		}
		specs = append(specs, m.Manifest.quantizedSpecs(n, t.Shape, dt)...)
		params += int64(len(t.Data))
	}
	m.Manifest.FormatVersion = FormatVersion
	_, bits, err := m.Manifest.Storage()
	if err != nil {
		return err
	}
	m.Manifest.Counts.ParamsStored = params
	m.Manifest.Counts.BytesStored = (bits + 7) / 8
	js, err := m.Manifest.Marshal()
	if err != nil {
		return err
	}
	w, err := formats.Create(path, map[string]string{ManifestKey: js}, specs)
	if err != nil {
		return err
	}
	for _, n := range names {
		t := m.Tensors[n]
		var err error
		if s, ok := m.Manifest.schemeOf(n, t.Shape); ok {
			err = writeQuantized(w, n, t, s)
		} else {
			err = w.WriteFloat32(n, t.Data)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// StorageOrder lists stored tensor names in file order: pass-through tensors,
// then per compound its bases followed by its layers' increments.
func (mf *Manifest) StorageOrder() []string {
	var out []string
	for _, p := range mf.Passthrough {
		out = append(out, p.Name)
	}
	incs := map[string]IncrementDesc{}
	for _, inc := range mf.Increments {
		incs[incKey(inc.Layer, inc.Suffix)] = inc
	}
	for c, layers := range mf.Compounds {
		for _, s := range mf.Suffixes {
			out = append(out, BaseName(c, s.Name))
		}
		for _, l := range layers {
			for _, s := range mf.Suffixes {
				inc, ok := incs[incKey(l, s.Name)]
				switch {
				case !ok:
				case inc.Kind == KindDense:
					out = append(out, DeltaName(l, s.Name))
				default:
					out = append(out, LoraBName(l, s.Name), LoraAName(l, s.Name))
				}
			}
		}
	}
	return out
}

// CheckFinite returns an error wrapping formats.ErrInvalid that names the
// tensor and the index of the first NaN or Inf in data, which holds the
// tensor's elements from offset on; nil when all are finite.
func CheckFinite[T float32 | float64](name string, data []T, offset int) error {
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("tensor %q: %w: non-finite value %v at element %d", name, formats.ErrInvalid, v, offset+i)
		}
	}
	return nil
}

// Has reports whether name is a tensor of the original model.
func (m *Model) Has(name string) bool {
	if _, _, ok := m.SplitName(name); ok {
		return true
	}
	return m.IsPassthrough(name)
}

// ConfigBytes returns the config.json recorded in the manifest.
func (m *Model) ConfigBytes() []byte { return m.Manifest.Config }

// OriginalShape returns the shape of an original tensor, or nil.
func (m *Model) OriginalShape(name string) []int {
	if _, s, ok := m.SplitName(name); ok {
		return m.suffix[s].Shape
	}
	if p, ok := m.pass[name]; ok {
		return p.Shape
	}
	return nil
}
