package vlora

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
)

// ScalesSuffix ends the name of the tensor holding the F16 scales of a
// quantized tensor: "<name>.qscales". The quantized tensor itself keeps its
// name and holds the packed codes as U8, one dimension long
// (quant.Scheme.CodeBytes of its rows × cols).
const ScalesSuffix = ".qscales"

// ScalesName returns the name of the scales tensor of the quantized tensor
// name.
func ScalesName(name string) string { return name + ScalesSuffix }

// QuantPlan gives the storage scheme of each family of stored 2-D tensors.
// A zero scheme (Bits 0) keeps that family in the manifest's float dtype;
// 1-D tensors (norms, biases and their deltas) always stay float.
type QuantPlan struct {
	// Bases applies to the compound bases.
	Bases quant.Scheme `json:"bases"`
	// Factors applies to the increments: lora_A, lora_B and 2-D dense
	// deltas.
	Factors quant.Scheme `json:"factors"`
	// Passthrough applies to the tensors stored as they are: embeddings
	// and the LM head.
	Passthrough quant.Scheme `json:"passthrough"`
	// Tensors, when set, gives the scheme of individual stored 2-D tensors
	// by stored name, over their family's (format version 3): a plan
	// chosen per tensor, as a bit budget makes it. A zero scheme keeps
	// that tensor in the manifest's float dtype.
	Tensors map[string]quant.Scheme `json:"tensors,omitempty"`
}

// UniformPlan applies s to every family.
func UniformPlan(s quant.Scheme) QuantPlan { return QuantPlan{Bases: s, Factors: s, Passthrough: s} }

// Active reports whether the plan quantizes anything.
func (p QuantPlan) Active() bool {
	if p.Bases.Bits != 0 || p.Factors.Bits != 0 || p.Passthrough.Bits != 0 {
		return true
	}
	for _, s := range p.Tensors {
		if s.Bits != 0 {
			return true
		}
	}
	return false
}

// Validate checks every scheme the plan uses; errors wrap formats.ErrInvalid.
func (p QuantPlan) Validate() error {
	for _, s := range []quant.Scheme{p.Bases, p.Factors, p.Passthrough} {
		if s.Bits == 0 {
			continue
		}
		if err := s.Validate(); err != nil {
			return err
		}
	}
	for name, s := range p.Tensors {
		if s.Bits == 0 {
			continue
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
	}
	return nil
}

// String returns "bases=int8/row,factors=int4/g32,passthrough=int8/row",
// "none" for float families.
func (p QuantPlan) String() string {
	f := func(s quant.Scheme) string {
		if s.Bits == 0 {
			return "none"
		}
		return s.String()
	}
	out := "bases=" + f(p.Bases) + ",factors=" + f(p.Factors) + ",passthrough=" + f(p.Passthrough)
	if len(p.Tensors) > 0 {
		out += fmt.Sprintf(" (%d tensors chosen one by one)", len(p.Tensors))
	}
	return out
}

// SchemeOf returns the scheme the plan gives a stored tensor of the given
// name and shape, and whether the tensor is quantized: 2-D tensors by
// their entry in Tensors, else by family; never 1-D ones.
func (p QuantPlan) SchemeOf(name string, shape []int) (quant.Scheme, bool) {
	if len(shape) < 2 {
		return quant.Scheme{}, false
	}
	if s, ok := p.Tensors[name]; ok {
		return s, s.Bits != 0
	}
	var s quant.Scheme
	switch family(name, shape) {
	case FamilyBases:
		s = p.Bases
	case FamilyFactors:
		s = p.Factors
	case FamilyPassthrough:
		s = p.Passthrough
	}
	return s, s.Bits != 0
}

// SchemeOf reports whether the manifest stores the tensor name of shape
// shape quantized, and in which scheme: its codes then lie under name and
// its F16 scales under ScalesName(name).
func (mf *Manifest) SchemeOf(name string, shape []int) (quant.Scheme, bool) {
	return mf.schemeOf(name, shape)
}

// schemeOf returns the scheme the manifest's plan gives a stored tensor.
func (mf *Manifest) schemeOf(name string, shape []int) (quant.Scheme, bool) {
	if mf.Quant == nil {
		return quant.Scheme{}, false
	}
	return mf.Quant.SchemeOf(name, shape)
}

// SchemeOf returns the storage scheme of the stored tensor name and
// whether it is quantized.
func (m *Model) SchemeOf(name string) (quant.Scheme, bool) {
	t, ok := m.Tensors[name]
	if !ok {
		return quant.Scheme{}, false
	}
	return m.Manifest.schemeOf(name, t.Shape)
}

// Storage families, as Manifest.Storage reports them.
const (
	FamilyBases       = "bases"
	FamilyFactors     = "factors"
	FamilyPassthrough = "passthrough"
	// FamilyVectors holds the 1-D tensors (norms, biases and their
	// deltas), which are never quantized.
	FamilyVectors = "vectors"
)

// FamilyStorage is what one family of stored tensors costs.
type FamilyStorage struct {
	Family string `json:"family"`
	// Scheme is the family's quantization scheme, or the manifest's float
	// dtype.
	Scheme string `json:"scheme"`
	Params int64  `json:"params"`
	Bits   int64  `json:"bits"`
}

// BitsPerWeight returns Bits per stored value.
func (f FamilyStorage) BitsPerWeight() float64 {
	if f.Params == 0 {
		return 0
	}
	return float64(f.Bits) / float64(f.Params)
}

// family returns the storage family of the stored tensor name.
func family(name string, shape []int) string {
	switch {
	case len(shape) < 2:
		return FamilyVectors
	case strings.HasPrefix(name, "vlora.compounds."):
		return FamilyBases
	case strings.HasPrefix(name, "vlora.layers."):
		return FamilyFactors
	}
	return FamilyPassthrough
}

// SchemeMixed is FamilyStorage.Scheme of a family whose tensors are
// stored in more than one way (a plan chosen per tensor).
const SchemeMixed = "mixed"

// Storage returns the cost of each family of stored tensors (bases,
// factors, passthrough, vectors; families with no tensor are left out) and
// their total in bits: quantized tensors at their codes and F16 scales, the
// others in the manifest's dtype.
func (mf *Manifest) Storage() ([]FamilyStorage, int64, error) {
	dt, err := formats.ParseDType(mf.DType)
	if err != nil {
		return nil, 0, err
	}
	fams := map[string]*FamilyStorage{}
	var total int64
	for name, shape := range mf.ExpectedTensors() {
		fam := family(name, shape)
		fs := fams[fam]
		if fs == nil {
			fs = &FamilyStorage{Family: fam, Scheme: strings.ToLower(dt.String())}
			fams[fam] = fs
		}
		n := int64(NumElements(shape))
		bits := n * int64(dt.Size()) * 8
		scheme := strings.ToLower(dt.String())
		if s, ok := mf.schemeOf(name, shape); ok {
			rows, cols := Matrix(shape)
			bits, scheme = s.StorageBits(rows, cols), s.String()
		}
		switch {
		case fs.Params == 0:
			fs.Scheme = scheme
		case fs.Scheme != scheme:
			fs.Scheme = SchemeMixed
		}
		fs.Params += n
		fs.Bits += bits
		total += bits
	}
	var out []FamilyStorage
	for _, f := range []string{FamilyBases, FamilyFactors, FamilyPassthrough, FamilyVectors} {
		if fs := fams[f]; fs != nil {
			out = append(out, *fs)
		}
	}
	return out, total, nil
}

// BitsPerOriginalWeight returns the bits the stored tensors cost per
// weight of the original model (Counts.ParamsOriginal): the size measure
// that compares a VLoRA file with a quantized copy of the original.
func (mf *Manifest) BitsPerOriginalWeight() (float64, error) {
	_, bits, err := mf.Storage()
	if err != nil || mf.Counts.ParamsOriginal == 0 {
		return 0, err
	}
	return float64(bits) / float64(mf.Counts.ParamsOriginal), nil
}

// quantizedSpecs returns the file entries of the stored tensor name: its
// codes and scales when quantized, else one float tensor in dt.
func (mf *Manifest) quantizedSpecs(name string, shape []int, dt formats.DType) []formats.TensorSpec {
	s, ok := mf.schemeOf(name, shape)
	if !ok {
		return []formats.TensorSpec{{Name: name, DType: dt, Shape: shape}}
	}
	rows, cols := Matrix(shape)
	return []formats.TensorSpec{
		{Name: name, DType: formats.U8, Shape: []int{s.CodeBytes(rows, cols)}},
		{Name: ScalesName(name), DType: formats.F16, Shape: []int{s.NumGroups(rows, cols)}},
	}
}

// writeQuantized quantizes t in scheme s and writes its codes and scales.
func writeQuantized(w *formats.Writer, name string, t *Tensor, s quant.Scheme) error {
	rows, cols := Matrix(t.Shape)
	q, err := quant.Quantize(t.Data, rows, cols, s)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	if err := w.WriteRaw(name, q.Codes); err != nil {
		return err
	}
	raw := make([]byte, 2*len(q.Scales))
	for i, h := range q.Scales {
		binary.LittleEndian.PutUint16(raw[2*i:], h)
	}
	return w.WriteRaw(ScalesName(name), raw)
}

// DecodeTensor reads the stored tensor name of the VLoRA file f, described
// by mf, as float32 in its manifest shape: dequantized when the manifest
// quantizes it, else converted from its float dtype. It is the one decoder
// of stored tensors, for whole-file loads and per-tensor streaming alike.
func DecodeTensor(f *formats.File, mf *Manifest, name string, shape []int) ([]float32, error) {
	s, ok := mf.schemeOf(name, shape)
	if !ok {
		return f.ReadFloat32(name)
	}
	rows, cols := Matrix(shape)
	codes, info, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	if info.DType != formats.U8 || len(codes) != s.CodeBytes(rows, cols) {
		return nil, fmt.Errorf("tensor %q: %w: %s codes of %d bytes, %s of %v needs U8 × %d", name, formats.ErrInvalid, info.DType, len(codes), s, shape, s.CodeBytes(rows, cols))
	}
	raw, sinfo, err := f.ReadRaw(ScalesName(name))
	if err != nil {
		return nil, err
	}
	if sinfo.DType != formats.F16 || len(raw) != 2*s.NumGroups(rows, cols) {
		return nil, fmt.Errorf("tensor %q: %w: scales %s of %d bytes, want F16 × %d", name, formats.ErrInvalid, sinfo.DType, len(raw), s.NumGroups(rows, cols))
	}
	q := &quant.Tensor{Rows: rows, Cols: cols, Scheme: s, Codes: codes, Scales: make([]uint16, len(raw)/2)}
	for i := range q.Scales {
		h := binary.LittleEndian.Uint16(raw[2*i:])
		if h&0x7c00 == 0x7c00 {
			// Finite scales times codes are finite: checking the scales
			// checks the tensor.
			return nil, fmt.Errorf("tensor %q: %w: non-finite scale of group %d", name, formats.ErrInvalid, i)
		}
		q.Scales[i] = h
	}
	if err := q.Check(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	out := make([]float32, rows*cols)
	q.Dequantize(out)
	return out, nil
}
