package vlora

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/stage"
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
	m, err := ReadManifestFile(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return m, f, nil
}

// ReadManifestFile returns the validated manifest of the open VLoRA file f,
// checked against f's tensors (CheckTensors). Errors name the file.
func ReadManifestFile(f *formats.File) (*Manifest, error) {
	s, ok := f.Metadata()[ManifestKey]
	if !ok {
		return nil, fmt.Errorf("%s: %w: not a VLoRA file (no %q in __metadata__)", f.Path(), formats.ErrInvalid, ManifestKey)
	}
	m, err := decodeManifest(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", f.Path(), formats.ErrInvalid, err)
	}
	// Every layer past a compound's first stores at least one tensor, so
	// the file's tensor count bounds the layers before anything is sized
	// by the manifest.
	if n := len(f.Names()); m.NumLayers > n {
		return nil, fmt.Errorf("%s: %w: manifest: num_layers %d, but the file stores only %d tensors", f.Path(), formats.ErrInvalid, m.NumLayers, n)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", f.Path(), formats.ErrInvalid, err)
	}
	if err := CheckTensors(m, f); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	return m, nil
}

// CheckTensors checks, from the header alone, that f stores exactly the
// tensors mf describes, each with the shape mf implies and a floating-point
// dtype. Every reader of a VLoRA file goes through it (ReadManifest), so a
// manifest that promises what the file lacks is rejected before anything
// is computed from it. Errors wrap formats.ErrInvalid and name the tensor.
func CheckTensors(mf *Manifest, f *formats.File) error {
	type spec struct {
		shape     []int
		dtype     formats.DType
		quantized bool // dtype is required; otherwise any float dtype
	}
	want := map[string]spec{}
	for name, shape := range mf.ExpectedTensors() {
		s, quantized := mf.schemeOf(name, shape)
		if !quantized {
			want[name] = spec{shape: shape}
			continue
		}
		rows, cols := Matrix(shape)
		want[name] = spec{shape: []int{s.CodeBytes(rows, cols)}, dtype: formats.U8, quantized: true}
		want[ScalesName(name)] = spec{shape: []int{s.NumGroups(rows, cols)}, dtype: formats.F16, quantized: true}
	}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		w, ok := want[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: tensor %q is not described by the manifest", formats.ErrInvalid, name)
		case !slices.Equal(info.Shape, w.shape):
			return fmt.Errorf("%w: tensor %q has shape %v, manifest implies %v", formats.ErrInvalid, name, info.Shape, w.shape)
		case w.quantized && info.DType != w.dtype:
			return fmt.Errorf("%w: tensor %q has dtype %s, its quantized storage needs %s", formats.ErrInvalid, name, info.DType, w.dtype)
		case !w.quantized && !formats.IsFloat(info.DType):
			return fmt.Errorf("%w: tensor %q has non-float dtype %s", formats.ErrInvalid, name, info.DType)
		}
	}
	if len(want) != len(f.Names()) {
		for name := range want {
			if _, ok := f.Info(name); !ok {
				return fmt.Errorf("%w: manifest expects tensor %q, which is missing", formats.ErrInvalid, name)
			}
		}
	}
	return nil
}

// Load reads a whole VLoRA file (or directory) into memory and checks that
// its tensors are exactly those the manifest describes.
func Load(path string) (*Model, error) {
	m, f, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return load(m, f, nil)
}

// LoadWithProgress is Load that reports each tensor read to progress (stage
// stage.Read), when progress is not nil.
func LoadWithProgress(path string, progress stage.ProgressFunc) (*Model, error) {
	m, f, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return load(m, f, progress)
}

// LoadFile reads the whole open VLoRA file f into memory, as Load does.
func LoadFile(f *formats.File) (*Model, error) {
	m, err := ReadManifestFile(f)
	if err != nil {
		return nil, err
	}
	return load(m, f, nil)
}

// load reads the tensors of f, whose manifest m has been checked against
// them, reporting each to progress when it is not nil.
func load(m *Manifest, f *formats.File, progress stage.ProgressFunc) (*Model, error) {
	tensors := map[string]*Tensor{}
	expect := m.ExpectedTensors()
	for name, shape := range expect {
		data, err := DecodeTensor(f, m, name, shape)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path(), err)
		}
		tensors[name] = &Tensor{Data: data, Shape: shape}
		if progress != nil {
			progress(stage.Progress{Stage: stage.Read, Done: len(tensors), Total: len(expect), Item: name})
		}
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
			if mf.HasBase(s.Name) {
				out[BaseName(c, s.Name)] = s.Shape
			}
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
// base + B·A, base + delta, or base (a zero base for suffixes without one),
// in a new slice.
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
	if base, ok := m.Tensors[BaseName(c, suffix)]; ok {
		copy(dst, base.Data)
	} else {
		clear(dst)
	}
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

// Shape returns the shape of a dense tensor by its original name, as
// Tensor would return it, without materializing anything.
func (m *Model) Shape(name string) ([]int, error) {
	if _, s, ok := m.SplitName(name); ok {
		return append([]int(nil), m.suffix[s].Shape...), nil
	}
	if d, ok := m.pass[name]; ok {
		return append([]int(nil), d.Shape...), nil
	}
	return nil, fmt.Errorf("no tensor %q", name)
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
	m.Manifest.FormatVersion = m.Manifest.NeededVersion()
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
			if mf.HasBase(s.Name) {
				out = append(out, BaseName(c, s.Name))
			}
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
//
// It scans blocks of finiteBlock values with v − v, which is 0 for every
// finite v and NaN for NaN and ±Inf, and locates the value only in a block
// whose sum is not 0: four independent sums per block, not two
// classifications per value.
func CheckFinite[T float32 | float64](name string, data []T, offset int) error {
	for b := 0; b < len(data); b += finiteBlock {
		blk := data[b:min(b+finiteBlock, len(data))]
		var s0, s1, s2, s3 T
		i := 0
		for ; i+4 <= len(blk); i += 4 {
			s0 += blk[i] - blk[i]
			s1 += blk[i+1] - blk[i+1]
			s2 += blk[i+2] - blk[i+2]
			s3 += blk[i+3] - blk[i+3]
		}
		for ; i < len(blk); i++ {
			s0 += blk[i] - blk[i]
		}
		if s0+s1+s2+s3 == 0 {
			continue
		}
		for i, v := range blk {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tensor %q: %w: non-finite value %v at element %d", name, formats.ErrInvalid, v, offset+b+i)
			}
		}
	}
	return nil
}

// finiteBlock is the number of values CheckFinite sums before testing.
const finiteBlock = 4096

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
