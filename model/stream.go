package model

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Residency says where a loaded model keeps its blocks' dense weights.
type Residency int

const (
	// Auto keeps the weights resident when the dense float32 weights of
	// the whole model take at most StreamThreshold bytes, and streams them
	// otherwise.
	Auto Residency = iota
	// Resident converts every weight to float32 once, at load time.
	Resident
	// Streamed keeps the weights as stored — a dense checkpoint in its
	// file and dtype, a VLoRA model as bases and factors — and builds each
	// block's dense weights only while a forward pass runs that block
	// (transformer.LoadStreamed). Memory is then the stored model plus one
	// block's float32 weights.
	Streamed
	// Stored computes on the weights as stored, for inference only
	// (transformer.LoadOperators): a file's matrices stay in its dtype
	// (BF16, F16 or quantized codes, memory-mapped; F32 read once), and a
	// VLoRA layer stays a base and its factors, applied as
	// x·baseᵀ + (x·Aᵀ)·Bᵀ. A decoding step reads each stored byte once and
	// builds no float32 matrix; a longer pass decodes each matrix a block
	// of rows at a time. Memory is the stored model plus the activations.
	// A model built by it cannot be trained; Close releases the mapping.
	Stored
)

// StreamThreshold is the size of a model's dense float32 weights above
// which Auto streams. Below it, converting once is cheaper than converting
// every pass and the memory is small anyway; a 1 B-parameter model holds
// 4.4 GB of float32 weights, against 2.2 GB as BF16 or 1.8 GB as VLoRA.
const StreamThreshold = 1 << 30

// streams reports whether a model of params dense parameters is streamed
// under r.
func (r Residency) streams(params int64) bool {
	return r == Streamed || (r == Auto && 4*params > StreamThreshold)
}

// LoadAs is Load with a choice of residency.
func LoadAs(path string, r Residency) (*Model, error) {
	if !IsVLoRA(path) {
		return LoadDenseAs(path, r)
	}
	if r == Stored {
		return loadVLoRAStored(path)
	}
	vm, err := vlora.Load(path)
	if err != nil {
		return nil, err
	}
	m, err := FromVLoRAAs(vm, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// LoadDenseAs is LoadDense with a choice of residency. A streamed model
// keeps the checkpoint open and reads each block from it during every
// pass; Close releases it.
func LoadDenseAs(dir string, r Residency) (*Model, error) {
	if r == Stored {
		if IsVLoRA(dir) {
			return nil, fmt.Errorf("%s: %w: a VLoRA file, not a dense model directory", dir, formats.ErrInvalid)
		}
		return loadDenseStored(dir)
	}
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	var params int64
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		params += int64(ti.NumElements())
	}
	if !r.streams(params) {
		ck.Close()
		return LoadDense(dir)
	}
	if ck.Config == nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w: no %s", dir, formats.ErrInvalid, formats.ConfigFile)
	}
	w := transformer.CheckpointWeights{Checkpoint: ck}
	net, err := transformer.LoadStreamed(ck.Config, w, w)
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m := &Model{Net: net, Path: dir, Config: ck.Config, close: ck.Close}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		m.StoredParams += int64(ti.NumElements())
		m.StoredBytes += ti.Size
	}
	return m, nil
}

// FromVLoRAAs is FromVLoRA with a choice of residency. A Stored model
// shares vm's float32 tensors, each layer applied as its base and factors.
// A streamed model
// shares vm's pass-through tensors and materializes each block from vm
// while a pass runs it, so it always reflects vm's current tensors.
func FromVLoRAAs(vm *vlora.Model, r Residency) (*Model, error) {
	if r == Stored {
		return fromVLoRAStoredInMemory(vm)
	}
	if !r.streams(vm.Manifest.Counts.ParamsOriginal) {
		return FromVLoRA(vm)
	}
	if len(vm.Manifest.Config) == 0 {
		return nil, fmt.Errorf("%w: the manifest records no config", formats.ErrInvalid)
	}
	cfg, err := formats.ParseConfig(vm.Manifest.Config)
	if err != nil {
		return nil, err
	}
	net, err := transformer.LoadStreamed(cfg, vm, vloraLayers{vm})
	if err != nil {
		return nil, err
	}
	mf := vm.Manifest
	return &Model{Net: net, VLoRA: vm, Config: cfg,
		StoredParams: mf.Counts.ParamsStored, StoredBytes: mf.Counts.BytesStored}, nil
}

// Close releases what a streamed dense model keeps open. It is a no-op for
// other models.
func (m *Model) Close() error {
	if m.close == nil {
		return nil
	}
	err := m.close()
	m.close = nil
	return err
}

// vloraLayers materializes a VLoRA model's blocks for a streamed network.
type vloraLayers struct{ vm *vlora.Model }

// FillLayer writes W = base + B·A (or base + delta) of each of block l's
// parameters.
func (s vloraLayers) FillLayer(l int, params []*transformer.Param) error {
	for _, p := range params {
		pl, suffix, ok := s.vm.SplitName(p.Name)
		if !ok || pl != l {
			return fmt.Errorf("internal: %s is not a tensor of layer %d", p.Name, l)
		}
		if err := s.vm.LayerWeightInto(p.Data, l, suffix); err != nil {
			return err
		}
	}
	return nil
}
