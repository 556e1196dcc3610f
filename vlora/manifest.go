// Package vlora defines the Vertical-LoRA model: a transformer layer stack cut
// into compounds of consecutive layers, each compound storing one dense base
// per parameter and, for the other layers, a rank-r increment B·A (2-D
// weights) or a dense delta (1-D weights). It holds the on-disk format (one
// safetensors file with a JSON manifest in __metadata__), layer-stack
// detection and parameter accounting.
package vlora

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// FormatVersion is the newest manifest version this package reads and
// writes. Version 2 added quantized storage (Manifest.Quant), version 3
// per-tensor schemes (QuantPlan.Tensors); a file is written with the
// lowest version that holds it (Manifest.NeededVersion), so files without
// per-tensor schemes stay readable by version-2 readers, and version 1
// and 2 files are still read.
const FormatVersion = 3

// NeededVersion returns the lowest format version that holds m: 3 with
// per-tensor schemes, 2 with quantized storage, else 1… but at least 2,
// the version this package wrote before per-tensor schemes.
func (m *Manifest) NeededVersion() int {
	if m.Quant != nil && len(m.Quant.Tensors) > 0 {
		return 3
	}
	return 2
}

// FormatName identifies VLoRA files in the manifest's "format" field.
const FormatName = "vlora"

// ManifestKey is the __metadata__ key holding the JSON manifest.
const ManifestKey = "vlora.manifest"

// BaseMode chooses each compound's base.
type BaseMode string

// Base modes.
const (
	// BaseFirst uses the compound's first layer as the base; that layer has
	// no increment.
	BaseFirst BaseMode = "first"
	// BaseMean uses the element-wise mean of the compound's layers; every
	// member has an increment.
	BaseMean BaseMode = "mean"
	// BaseZero stores no base: every layer keeps its own weight as the
	// increment, low-rank or dense (per-layer low-rank compression).
	BaseZero BaseMode = "zero"
)

// ParseBaseMode parses "first", "mean" or "zero".
func ParseBaseMode(s string) (BaseMode, error) {
	switch BaseMode(s) {
	case BaseFirst, BaseMean, BaseZero:
		return BaseMode(s), nil
	}
	return "", fmt.Errorf("unknown base mode %q (want first, mean or zero)", s)
}

// BaseFor returns the base mode of suffix: its entry in SuffixBases, or
// BaseMode.
func (m *Manifest) BaseFor(suffix string) BaseMode {
	if b, ok := m.SuffixBases[suffix]; ok {
		return b
	}
	return m.BaseMode
}

// HasBase reports whether compounds store a base for suffix.
func (m *Manifest) HasBase(suffix string) bool { return m.BaseFor(suffix) != BaseZero }

// Increment kinds.
const (
	KindLowRank = "lowrank" // lora_B · lora_A
	KindDense   = "dense"   // dense delta, for 1-D tensors or when factors would be larger
)

// SourceFile records one input file and its digest.
type SourceFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// TensorDesc names a tensor with its shape and original dtype.
type TensorDesc struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
}

// IncrementDesc records one stored increment.
type IncrementDesc struct {
	Layer  int    `json:"layer"`
	Suffix string `json:"suffix"`
	Kind   string `json:"kind"`
	// Rank is the factor rank for KindLowRank, 0 for dense deltas.
	Rank int `json:"rank"`
	// RelError is ‖W − (base + increment)‖_F / ‖W‖_F at compression time.
	RelError float64 `json:"rel_error"`
	// Energy is the fraction of the increment's squared singular values kept.
	Energy float64 `json:"energy,omitempty"`
	// Reason explains a dense 2-D increment (factors would be larger).
	Reason string `json:"reason,omitempty"`
}

// SVDInfo records how increments were factorized.
type SVDInfo struct {
	Method     string  `json:"method"`
	Rank       int     `json:"rank,omitempty"`
	Energy     float64 `json:"energy,omitempty"`
	Seed       uint64  `json:"seed"`
	Oversample int     `json:"oversample,omitempty"`
	PowerIters int     `json:"power_iters,omitempty"`
}

// Counts records parameters (stored floats) and bytes.
type Counts struct {
	ParamsOriginal int64 `json:"params_original"`
	ParamsStored   int64 `json:"params_stored"`
	BytesOriginal  int64 `json:"bytes_original"`
	BytesStored    int64 `json:"bytes_stored"`
	// StackOriginal and StackStored count the layer stack alone.
	StackOriginal int64 `json:"stack_original"`
	StackStored   int64 `json:"stack_stored"`
}

// AlignInfo records the symmetry alignment of the layers (package align):
// the reference each compound's layers were aligned to ("mean" or "first")
// and the number of re-alignments to the mean.
type AlignInfo struct {
	Reference  string `json:"reference"`
	Iterations int    `json:"iterations,omitempty"`
}

// DistillInfo records a distillation run.
type DistillInfo struct {
	Steps        int     `json:"steps"`
	Tokens       int64   `json:"tokens"`
	Data         string  `json:"data,omitempty"`
	DataSHA256   string  `json:"data_sha256,omitempty"`
	Seed         uint64  `json:"seed"`
	LR           float64 `json:"lr"`
	Batch        int     `json:"batch"`
	SeqLen       int     `json:"seq_len"`
	Train        string  `json:"train"`
	FinalLoss    float64 `json:"final_loss"`
	EvalKL       float64 `json:"eval_kl,omitempty"`
	EvalData     string  `json:"eval_data,omitempty"`
	Temperature  float64 `json:"temperature,omitempty"`
	HiddenWeight float64 `json:"hidden_weight,omitempty"`
	// HiddenDecay says the hidden-state weight fell to zero over the run.
	HiddenDecay bool `json:"hidden_decay,omitempty"`
	// LocalSteps is the number of local-stage steps per compound.
	LocalSteps int `json:"local_steps,omitempty"`
	// Engine names the engine of the last run when it was not this
	// program's: "torch" for the PyTorch engine (python/vlora_torch).
	Engine string `json:"engine,omitempty"`
}

// Manifest is the self-description stored in a VLoRA file.
type Manifest struct {
	Format        string          `json:"format"`
	FormatVersion int             `json:"format_version"`
	ToolVersion   string          `json:"tool_version"`
	Architecture  string          `json:"architecture,omitempty"`
	Config        json.RawMessage `json:"config,omitempty"`
	Sources       []SourceFile    `json:"sources"`
	LayerPrefix   string          `json:"layer_prefix"`
	NumLayers     int             `json:"num_layers"`
	// Suffixes describe one layer's tensors (names are suffixes).
	Suffixes []TensorDesc `json:"suffixes"`
	// Passthrough lists tensors stored dense under their original names.
	Passthrough  []TensorDesc `json:"passthrough"`
	CompoundSize int          `json:"compound_size"`
	Compounds    [][]int      `json:"compounds"`
	BaseMode     BaseMode     `json:"base_mode"`
	// SuffixBases overrides BaseMode for individual suffixes.
	SuffixBases map[string]BaseMode `json:"suffix_bases,omitempty"`
	SVD         SVDInfo             `json:"svd"`
	Increments  []IncrementDesc     `json:"increments"`
	DType       string              `json:"dtype"`
	Counts      Counts              `json:"counts"`
	Distill     *DistillInfo        `json:"distill,omitempty"`
	// Align, when set, records that the layers were re-expressed by the
	// exact symmetry alignment before their differences from the compound
	// bases were taken: the stored model computes the original's function
	// in other coordinates inside each block.
	Align *AlignInfo `json:"align,omitempty"`
	// Quant, when set, stores the 2-D tensors of each family quantized
	// (format version 2; see QuantPlan and ScalesName).
	Quant *QuantPlan `json:"quant,omitempty"`
}

// Compounds partitions layers 0 … n-1 into runs of k consecutive layers; the
// last run may be shorter.
func Compounds(n, k int) [][]int {
	var out [][]int
	for s := 0; s < n; s += k {
		var c []int
		for l := s; l < min(n, s+k); l++ {
			c = append(c, l)
		}
		out = append(out, c)
	}
	return out
}

// Marshal encodes the manifest as JSON.
func (m *Manifest) Marshal() (string, error) {
	b, err := json.Marshal(m)
	return string(b), err
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(s string) (*Manifest, error) {
	m, err := decodeManifest(s)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeManifest decodes a manifest without validating it.
func decodeManifest(s string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %.160v", err)
	}
	return &m, nil
}

// Validate checks the manifest's internal consistency: compounds partition
// the layers in order, each increment belongs to a stored layer and suffix,
// and the base mode decides which layers have increments.
func (m *Manifest) Validate() error {
	if err := m.validateLayout(); err != nil {
		return err
	}
	suf, err := m.validateSuffixes()
	if err != nil {
		return err
	}
	seen, err := m.validateIncrements(suf)
	if err != nil {
		return err
	}
	if len(m.Config) > 0 {
		cfg, err := formats.ParseConfig(m.Config)
		if err != nil {
			return manifestErr("config: %v", err)
		}
		if err := cfg.CheckLayers(m.NumLayers); err != nil {
			return manifestErr("config: %v", err)
		}
	}
	for _, c := range m.Compounds {
		for j, l := range c {
			for name := range suf {
				has := seen[incKey(l, name)]
				if need := !(j == 0 && m.BaseFor(name) == BaseFirst); need != has {
					return manifestErr("layer %d %s: increment present=%v, but base mode %s needs %v", l, name, has, m.BaseFor(name), need)
				}
			}
		}
	}
	return nil
}

func manifestErr(f string, a ...any) error { return fmt.Errorf("manifest: "+f, a...) }

// validateLayout checks the format, the base mode, the layer count and the
// compounds.
func (m *Manifest) validateLayout() error {
	if m.Format != FormatName {
		return manifestErr("format is %q, want %q", m.Format, FormatName)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return manifestErr("format version %d is not supported (this build reads 1 to %d)", m.FormatVersion, FormatVersion)
	}
	if m.Quant != nil && m.FormatVersion < 2 {
		return manifestErr("quantized storage needs format version 2, not %d", m.FormatVersion)
	}
	if m.Quant != nil && len(m.Quant.Tensors) > 0 && m.FormatVersion < 3 {
		return manifestErr("per-tensor quantized storage needs format version 3, not %d", m.FormatVersion)
	}
	if m.Quant != nil {
		if err := m.Quant.Validate(); err != nil {
			return err
		}
	}
	if _, err := ParseBaseMode(string(m.BaseMode)); err != nil {
		return manifestErr("%v", err)
	}
	if m.NumLayers < 1 || m.NumLayers > 1<<20 {
		return manifestErr("num_layers %d out of range", m.NumLayers)
	}
	if m.LayerPrefix == "" {
		return manifestErr("empty layer_prefix")
	}
	if m.CompoundSize < 1 {
		return manifestErr("compound_size %d < 1", m.CompoundSize)
	}
	want := Compounds(m.NumLayers, m.CompoundSize)
	if len(want) != len(m.Compounds) {
		return manifestErr("%d compounds, want %d for %d layers of size %d", len(m.Compounds), len(want), m.NumLayers, m.CompoundSize)
	}
	for i := range want {
		if !slices.Equal(want[i], m.Compounds[i]) {
			return manifestErr("compound %d is %v, want %v", i, m.Compounds[i], want[i])
		}
	}
	return nil
}

// validateSuffixes checks the suffixes and returns them by name.
func (m *Manifest) validateSuffixes() (map[string]TensorDesc, error) {
	suf := map[string]TensorDesc{}
	for _, s := range m.Suffixes {
		if s.Name == "" {
			return nil, manifestErr("empty suffix name")
		}
		if _, dup := suf[s.Name]; dup {
			return nil, manifestErr("suffix %q listed twice", s.Name)
		}
		if len(s.Shape) == 0 || len(s.Shape) > 8 {
			return nil, manifestErr("suffix %q has rank-%d shape", s.Name, len(s.Shape))
		}
		for _, d := range s.Shape {
			if d < 1 || d > 1<<31 {
				return nil, manifestErr("suffix %q has dimension %d", s.Name, d)
			}
		}
		suf[s.Name] = s
	}
	if len(suf) == 0 {
		return nil, manifestErr("no suffixes")
	}
	for name, b := range m.SuffixBases {
		if _, ok := suf[name]; !ok {
			return nil, manifestErr("base mode for unknown suffix %q", name)
		}
		if _, err := ParseBaseMode(string(b)); err != nil {
			return nil, manifestErr("suffix %q: %v", name, err)
		}
	}
	return suf, nil
}

// validateIncrements checks each increment against the suffixes and returns
// the set of (layer, suffix) keys (incKey) that have one.
func (m *Manifest) validateIncrements(suf map[string]TensorDesc) (map[string]bool, error) {
	seen := map[string]bool{}
	for _, inc := range m.Increments {
		s, ok := suf[inc.Suffix]
		if !ok {
			return nil, manifestErr("increment for unknown suffix %q", inc.Suffix)
		}
		if inc.Layer < 0 || inc.Layer >= m.NumLayers {
			return nil, manifestErr("increment for layer %d out of range", inc.Layer)
		}
		key := incKey(inc.Layer, inc.Suffix)
		if seen[key] {
			return nil, manifestErr("layer %d %s has two increments", inc.Layer, inc.Suffix)
		}
		seen[key] = true
		switch inc.Kind {
		case KindDense:
		case KindLowRank:
			if len(s.Shape) < 2 {
				return nil, manifestErr("layer %d %s: low-rank increment of a 1-D tensor", inc.Layer, inc.Suffix)
			}
			rows, cols := Matrix(s.Shape)
			if inc.Rank < 0 || inc.Rank > min(rows, cols) {
				return nil, manifestErr("layer %d %s: rank %d out of range for %dx%d", inc.Layer, inc.Suffix, inc.Rank, rows, cols)
			}
		default:
			return nil, manifestErr("layer %d %s: unknown increment kind %q", inc.Layer, inc.Suffix, inc.Kind)
		}
	}
	return seen, nil
}

// Matrix views a shape as a matrix: rows = first dimension, cols = the
// product of the rest (1 for a 1-D shape).
func Matrix(shape []int) (rows, cols int) {
	if len(shape) == 0 {
		return 1, 1
	}
	return shape[0], numel(shape[1:])
}
