package model

import (
	"encoding/binary"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// LoadDenseRounded loads the checkpoint dir with every 2-D floating-point
// tensor rounded to nearest in scheme s (quant.Quantize, as
// quant.RoundToNearest does), for inference only: the matrices the passes
// take as operators (linear layers, token embeddings, the head) are kept
// as the scheme's codes and F16 scales and computed on as stored
// (kernels.MulStored), and the 2-D tensors a pass reads dense (GPT-2's
// Conv1D weights) are the rounded values in float32. Each tensor is read
// from the checkpoint once, as float32, and rounded before the next is
// read, so memory is the rounded model (its codes and scales) plus one
// float32 tensor, not the float32 model. Close releases the checkpoint.
func LoadDenseRounded(dir string, s quant.Scheme) (*Model, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if IsVLoRA(dir) {
		return nil, fmt.Errorf("%s: %w: a VLoRA file, not a dense model directory", dir, formats.ErrInvalid)
	}
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	if ck.Config == nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w: no %s", dir, formats.ErrInvalid, formats.ConfigFile)
	}
	n, err := storedLayers(ck)
	if err == nil {
		err = ck.Config.CheckLayers(n)
	}
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	ops := &roundedOperators{CheckpointWeights: transformer.CheckpointWeights{Checkpoint: ck}, s: s, ops: map[string]transformer.Operator{}}
	net, err := transformer.LoadOperators(ck.Config, ops, ops)
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m := &Model{Net: net, Path: dir, Config: ck.Config, close: ck.Close}
	for _, name := range ck.Names() {
		ti, _ := ck.Info(name)
		m.StoredParams += int64(ti.NumElements())
	}
	m.StoredBytes = net.StoredBytes()
	return m, nil
}

// roundedOperators supplies a checkpoint's 2-D tensors rounded to nearest
// in s: as quantized operators, or dense.
type roundedOperators struct {
	transformer.CheckpointWeights
	s quant.Scheme
	// ops caches each tensor's operator (a tied head is the embedding).
	ops map[string]transformer.Operator
}

// rounded reads the 2-D tensor name and quantizes it; ok is false for a
// tensor that is not a 2-D floating-point one.
func (r *roundedOperators) rounded(name string) (qt *quant.Tensor, ok bool, err error) {
	info, found := r.Checkpoint.Info(name)
	if !found || len(info.Shape) != 2 || !formats.IsFloat(info.DType) {
		return nil, false, nil
	}
	data, err := r.Checkpoint.ReadFloat32(name)
	if err != nil {
		return nil, false, err
	}
	qt, err = quant.Quantize(data, info.Shape[0], info.Shape[1], r.s)
	if err != nil {
		return nil, false, fmt.Errorf("tensor %q: %w", name, err)
	}
	return qt, true, nil
}

// Operator returns the 2-D tensor name rounded to nearest, as codes and
// scales.
func (r *roundedOperators) Operator(name string) (transformer.Operator, error) {
	if op, ok := r.ops[name]; ok {
		return op, nil
	}
	qt, ok, err := r.rounded(name)
	if err != nil || !ok {
		return nil, err
	}
	scales := make([]byte, 2*len(qt.Scales))
	for i, h := range qt.Scales {
		binary.LittleEndian.PutUint16(scales[2*i:], h)
	}
	w := &kernels.Stored{Format: kernels.Quant, Rows: qt.Rows, Cols: qt.Cols, Raw: qt.Codes, Scales: scales, Bits: r.s.Bits, Group: r.s.GroupSize}
	op, err := operatorOf(name, w, w.Check())
	if err != nil {
		return nil, err
	}
	r.ops[name] = op
	return op, nil
}

// Tensor returns the named tensor as float32: a 2-D floating-point tensor
// with its rounded values, any other as stored.
func (r *roundedOperators) Tensor(name string) ([]float32, []int, error) {
	qt, ok, err := r.rounded(name)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return r.CheckpointWeights.Tensor(name)
	}
	data := make([]float32, qt.Rows*qt.Cols)
	qt.Dequantize(data)
	return data, []int{qt.Rows, qt.Cols}, nil
}
