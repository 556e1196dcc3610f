// Package model loads what the forward pass runs: a dense Hugging Face
// model directory or a VLoRA file, detected by content, as a
// transformer.Model together with its config and, for VLoRA, the stored
// tensors it was materialized from.
//
// A VLoRA model's dense per-layer weights are materialized from the stored
// bases and increments one layer at a time (MaterializeLayer), through
// vlora.Model.LayerWeightInto, the single implementation of W = base + B·A.
package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// ErrUnsupportedArchitecture is wrapped by the errors of Load, LoadDense and
// FromVLoRA when the config names an architecture the forward pass does not
// implement.
var ErrUnsupportedArchitecture = transformer.ErrUnsupportedArchitecture

// Model is a runnable model with a description of where it came from.
type Model struct {
	// Net runs the forward and backward passes.
	Net    *transformer.Model
	Config *formats.Config
	// VLoRA holds the stored tensors when the model is a VLoRA model; Net's
	// layer weights are materialized from them.
	VLoRA *vlora.Model
	// Path is the directory or file loaded; empty for a model built in
	// memory.
	Path string
	// StoredParams and StoredBytes count what the source stores: every
	// tensor element, and its bytes in the stored dtype.
	StoredParams, StoredBytes int64
	// close releases the checkpoint a streamed dense model reads from.
	close func() error
}

// IsVLoRA reports whether path is a VLoRA file, or a directory holding one.
func IsVLoRA(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if st.IsDir() {
		_, err := os.Stat(filepath.Join(path, vlora.FileName))
		return err == nil
	}
	f, err := formats.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	_, ok := f.Metadata()[vlora.ManifestKey]
	return ok
}

// Load loads a Hugging Face model directory or a VLoRA file (or a directory
// holding one), whichever path is.
func Load(path string) (*Model, error) {
	if IsVLoRA(path) {
		vm, err := vlora.Load(path)
		if err != nil {
			return nil, err
		}
		m, err := FromVLoRA(vm)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.Path = path
		return m, nil
	}
	return LoadDense(path)
}

// LoadDense loads the Hugging Face model directory dir (config.json and
// safetensors weights, single or sharded).
func LoadDense(dir string) (*Model, error) {
	if IsVLoRA(dir) {
		return nil, fmt.Errorf("%s: %w: a VLoRA file, not a dense model directory", dir, formats.ErrInvalid)
	}
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if ck.Config == nil {
		return nil, fmt.Errorf("%s: %w: no %s", dir, formats.ErrInvalid, formats.ConfigFile)
	}
	return fromCheckpoint(dir, ck, ck.Config)
}

// fromCheckpoint builds the model cfg describes from the weights of ck,
// after checking cfg's layer count against the stored layers.
func fromCheckpoint(dir string, ck *formats.Checkpoint, cfg *formats.Config) (*Model, error) {
	n, err := storedLayers(ck)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := cfg.CheckLayers(n); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, formats.ConfigFile), err)
	}
	net, err := transformer.Load(cfg, transformer.CheckpointWeights{Checkpoint: ck})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m := &Model{Net: net, Path: dir, Config: cfg}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		m.StoredParams += int64(ti.NumElements())
		m.StoredBytes += ti.Size
	}
	return m, nil
}

// FromVLoRA builds a runnable model from an in-memory VLoRA model,
// materializing each layer's dense weights. The result shares vm; after vm's
// tensors change, Materialize brings Net up to date.
func FromVLoRA(vm *vlora.Model) (*Model, error) {
	if len(vm.Manifest.Config) == 0 {
		return nil, fmt.Errorf("%w: the manifest records no config", formats.ErrInvalid)
	}
	cfg, err := formats.ParseConfig(vm.Manifest.Config)
	if err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	if err := cfg.CheckLayers(vm.Manifest.NumLayers); err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	net, err := transformer.Load(cfg, vm)
	if err != nil {
		return nil, err
	}
	mf := vm.Manifest
	return &Model{Net: net, VLoRA: vm, Config: cfg,
		StoredParams: mf.Counts.ParamsStored, StoredBytes: mf.Counts.BytesStored}, nil
}

// IsCausalLM reports whether the model is a causal language model
// (next-token logits).
func (m *Model) IsCausalLM() bool { return IsCausalLM(m.Config) }

// IsCausalLM reports whether the configured architecture is a causal
// language model (next-token logits).
func IsCausalLM(cfg *formats.Config) bool {
	a := cfg.Architecture()
	return strings.HasSuffix(a, "ForCausalLM") || strings.HasSuffix(a, "LMHeadModel")
}

// errNotVLoRA is returned by the materialization methods of a dense model.
var errNotVLoRA = errors.New("model: not a VLoRA model")

// MaterializeLayer rewrites the dense weights of layer l of Net from the
// stored VLoRA tensors. Tensors the architecture does not use are skipped.
// A streamed model (Streamed) needs no materializing: it builds each layer
// from the stored tensors while a pass runs it.
func (m *Model) MaterializeLayer(l int) error {
	if m.VLoRA == nil {
		return errNotVLoRA
	}
	if m.Net.Streamed() || m.Net.Operators() {
		return nil // built from m.VLoRA during every pass, or computed on its tensors
	}
	for _, suf := range m.VLoRA.Manifest.Suffixes {
		p, ok := m.Net.Params[m.VLoRA.LayerName(l, suf.Name)]
		if !ok {
			continue
		}
		if err := m.VLoRA.LayerWeightInto(p.Data, l, suf.Name); err != nil {
			return err
		}
	}
	return nil
}

// Materialize rewrites every dense weight of Net from the stored VLoRA
// tensors: each layer (MaterializeLayer) and the pass-through tensors.
func (m *Model) Materialize() error {
	if m.VLoRA == nil {
		return errNotVLoRA
	}
	if m.Net.Streamed() || m.Net.Operators() {
		return nil // blocks are built during every pass; pass-through tensors are shared
	}
	for l := range m.VLoRA.Manifest.NumLayers {
		if err := m.MaterializeLayer(l); err != nil {
			return err
		}
	}
	for _, pt := range m.VLoRA.Manifest.Passthrough {
		if p, ok := m.Net.Params[pt.Name]; ok {
			copy(p.Data, m.VLoRA.Tensors[pt.Name].Data)
		}
	}
	return nil
}

// storedLayers returns the number of layers in ck's layer stack.
func storedLayers(ck *formats.Checkpoint) (int, error) {
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", formats.ErrInvalid, err)
	}
	return st.NumLayers, nil
}
