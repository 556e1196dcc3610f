package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// mapped is a file's bytes, memory-mapped where the platform allows.
type mapped struct {
	data  []byte
	unmap func() error
}

// close releases the mapping.
func (m *mapped) close() error {
	if m == nil || m.unmap == nil {
		return nil
	}
	err := m.unmap()
	m.unmap, m.data = nil, nil
	return err
}

// bytesOf returns the bytes of the tensor info describes inside m.
func (m *mapped) bytesOf(info *formats.TensorInfo) ([]byte, error) {
	if info.Offset < 0 || info.Offset+info.Size > int64(len(m.data)) {
		return nil, fmt.Errorf("%s: %w: tensor %q lies outside the file", info.File, formats.ErrInvalid, info.Name)
	}
	return m.data[info.Offset : info.Offset+info.Size : info.Offset+info.Size], nil
}

// checkHalfFinite reports the first non-finite element of the BF16 or F16
// bytes raw (all exponent bits set), scanning in parallel.
func checkHalfFinite(raw []byte, bf16 bool) error {
	mask := uint16(0x7c00)
	if bf16 {
		mask = 0x7f80
	}
	n := len(raw) / 2
	workers := min(runtime.GOMAXPROCS(0), max(1, n>>20))
	bad := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		bad[w] = -1
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				if binary.LittleEndian.Uint16(raw[2*i:])&mask == mask {
					bad[w] = i
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, i := range bad {
		if i >= 0 {
			return fmt.Errorf("%w: element %d is not finite", formats.ErrInvalid, i)
		}
	}
	return nil
}

// storedMatrix returns the rows × cols matrix stored in raw with dtype dt,
// without a copy for BF16 and F16 (after checking every element is
// finite) and converted for F32 and F64 (checked by the conversion).
func storedMatrix(raw []byte, dt formats.DType, rows, cols int) (*kernels.Stored, error) {
	w := &kernels.Stored{Rows: rows, Cols: cols}
	switch dt {
	case formats.BF16, formats.F16:
		if err := checkHalfFinite(raw, dt == formats.BF16); err != nil {
			return nil, err
		}
		w.Format, w.Raw = kernels.BF16, raw
		if dt == formats.F16 {
			w.Format = kernels.F16
		}
	default:
		w.Format, w.F32 = kernels.F32, make([]float32, rows*cols)
		if err := formats.DecodeFloat32(w.F32, raw, dt); err != nil {
			return nil, err
		}
		if err := formats.CheckFinite(w.F32); err != nil {
			return nil, err
		}
	}
	return w, w.Check()
}

// operatorOf wraps a stored matrix, naming the tensor in errors.
func operatorOf(name string, w *kernels.Stored, err error) (transformer.Operator, error) {
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return transformer.NewStoredOperator(w)
}

// denseOperators supplies a dense checkpoint's 2-D tensors as operators
// over the memory-mapped files.
type denseOperators struct {
	transformer.CheckpointWeights
	maps map[string]*mapped
}

// Operator returns the named 2-D tensor as stored.
func (d *denseOperators) Operator(name string) (transformer.Operator, error) {
	info, ok := d.Checkpoint.Info(name)
	if !ok || len(info.Shape) != 2 || !formats.IsFloat(info.DType) {
		return nil, nil
	}
	mp, ok := d.maps[info.File]
	if !ok {
		var err error
		if mp, err = mapFile(info.File); err != nil {
			return nil, err
		}
		d.maps[info.File] = mp
	}
	raw, err := mp.bytesOf(info)
	if err != nil {
		return nil, err
	}
	w, err := storedMatrix(raw, info.DType, info.Shape[0], info.Shape[1])
	return operatorOf(name, w, err)
}

// closeMaps releases every mapping of maps.
func closeMaps(maps map[string]*mapped) error {
	var errs []error
	for _, m := range maps {
		errs = append(errs, m.close())
	}
	return errors.Join(errs...)
}

// loadDenseStored loads the checkpoint dir with its 2-D weights as
// operators on the memory-mapped files (Stored residency).
func loadDenseStored(dir string) (*Model, error) {
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
	ops := &denseOperators{CheckpointWeights: transformer.CheckpointWeights{Checkpoint: ck}, maps: map[string]*mapped{}}
	release := func() error { return errors.Join(closeMaps(ops.maps), ck.Close()) }
	net, err := transformer.LoadOperators(ck.Config, ops.CheckpointWeights, ops)
	if err != nil {
		release()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m := &Model{Net: net, Path: dir, Config: ck.Config, close: release}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		m.StoredParams += int64(ti.NumElements())
		m.StoredBytes += ti.Size
	}
	return m, nil
}

// vloraOperators supplies a VLoRA model's layer weights as operators:
// base + B·A or base + delta, the terms kept as stored.
type vloraOperators struct {
	mf    *vlora.Manifest
	stack vlora.Stack
	incs  map[string]*vlora.IncrementDesc
	pass  map[string][]int
	// tensor returns the stored tensor name (of manifest shape shape) as
	// a matrix; decode returns it as float32.
	tensor func(name string, shape []int) (*kernels.Stored, error)
	decode func(name string, shape []int) ([]float32, error)
	// ops caches the operator of each stored tensor, so that a tensor
	// used twice (a tied head) is checked once.
	ops map[string]transformer.Operator
}

func newVLoRAOperators(mf *vlora.Manifest) *vloraOperators {
	v := &vloraOperators{mf: mf, incs: map[string]*vlora.IncrementDesc{}, pass: map[string][]int{}, ops: map[string]transformer.Operator{}}
	v.stack = vlora.Stack{Prefix: mf.LayerPrefix, NumLayers: mf.NumLayers, Shapes: map[string][]int{}}
	for _, s := range mf.Suffixes {
		v.stack.Shapes[s.Name] = s.Shape
	}
	for i := range mf.Increments {
		inc := &mf.Increments[i]
		v.incs[fmt.Sprint(inc.Layer, "|", inc.Suffix)] = inc
	}
	for _, p := range mf.Passthrough {
		v.pass[p.Name] = p.Shape
	}
	return v
}

// op returns the stored tensor name of shape shape (a matrix) as an
// operator.
func (v *vloraOperators) op(name string, shape []int) (transformer.Operator, error) {
	if op, ok := v.ops[name]; ok {
		return op, nil
	}
	w, err := v.tensor(name, shape)
	op, err := operatorOf(name, w, err)
	if err != nil {
		return nil, err
	}
	v.ops[name] = op
	return op, nil
}

// Operator returns the 2-D weight name (an original name) as stored: a
// pass-through matrix, or a layer's base with its increment.
func (v *vloraOperators) Operator(name string) (transformer.Operator, error) {
	l, suf, ok := v.stack.Split(name)
	if !ok {
		shape, ok := v.pass[name]
		if !ok || len(shape) != 2 {
			return nil, nil
		}
		return v.op(name, shape)
	}
	shape := v.stack.Shapes[suf]
	if len(shape) != 2 {
		return nil, nil
	}
	var base transformer.Operator
	if v.mf.HasBase(suf) {
		var err error
		if base, err = v.op(vlora.BaseName(l/v.mf.CompoundSize, suf), shape); err != nil {
			return nil, err
		}
	}
	inc := v.incs[fmt.Sprint(l, "|", suf)]
	switch {
	case inc == nil || (inc.Kind != vlora.KindDense && inc.Rank == 0):
		if base == nil {
			// A zero base without increment: a zero matrix.
			w := &kernels.Stored{Format: kernels.F32, Rows: shape[0], Cols: shape[1], F32: make([]float32, shape[0]*shape[1])}
			return transformer.NewStoredOperator(w)
		}
		return base, nil
	case inc.Kind == vlora.KindDense:
		d, err := v.op(vlora.DeltaName(l, suf), shape)
		if err != nil {
			return nil, err
		}
		return transformer.NewSumOperator(base, d, nil)
	}
	rows, cols := vlora.Matrix(shape)
	b, err := v.op(vlora.LoraBName(l, suf), []int{rows, inc.Rank})
	if err != nil {
		return nil, err
	}
	a, err := v.op(vlora.LoraAName(l, suf), []int{inc.Rank, cols})
	if err != nil {
		return nil, err
	}
	return transformer.NewSumOperator(base, b, a)
}

// Tensor returns the dense float32 value of an original tensor: the
// vectors (norms, biases) the model keeps dense, and any matrix the
// architecture cannot take as an operator.
func (v *vloraOperators) Tensor(name string) ([]float32, []int, error) {
	l, suf, ok := v.stack.Split(name)
	if !ok {
		shape, ok := v.pass[name]
		if !ok {
			return nil, nil, fmt.Errorf("%w: %q", transformer.ErrNotFound, name)
		}
		data, err := v.decode(name, shape)
		return data, shape, err
	}
	shape := v.stack.Shapes[suf]
	n := vlora.NumElements(shape)
	dst := make([]float32, n)
	if v.mf.HasBase(suf) {
		base, err := v.decode(vlora.BaseName(l/v.mf.CompoundSize, suf), shape)
		if err != nil {
			return nil, nil, err
		}
		copy(dst, base)
	}
	inc := v.incs[fmt.Sprint(l, "|", suf)]
	switch {
	case inc == nil:
	case inc.Kind == vlora.KindDense:
		d, err := v.decode(vlora.DeltaName(l, suf), shape)
		if err != nil {
			return nil, nil, err
		}
		for i, x := range d {
			dst[i] += x
		}
	case inc.Rank > 0:
		rows, cols := vlora.Matrix(shape)
		b, err := v.decode(vlora.LoraBName(l, suf), []int{rows, inc.Rank})
		if err != nil {
			return nil, nil, err
		}
		a, err := v.decode(vlora.LoraAName(l, suf), []int{inc.Rank, cols})
		if err != nil {
			return nil, nil, err
		}
		kernels.Sgemm(false, false, rows, cols, inc.Rank, 1, b, inc.Rank, a, cols, 1, dst, cols)
	}
	return dst, append([]int(nil), shape...), nil
}

// Has reports whether name is a tensor of the original model.
func (v *vloraOperators) Has(name string) bool {
	if _, _, ok := v.stack.Split(name); ok {
		return true
	}
	_, ok := v.pass[name]
	return ok
}

// loadVLoRAStored loads the VLoRA file at path with every matrix as
// stored, on the memory-mapped file (Stored residency).
func loadVLoRAStored(path string) (*Model, error) {
	mf, f, err := vlora.ReadManifest(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mp, err := mapFile(f.Path())
	if err != nil {
		return nil, err
	}
	v := newVLoRAOperators(mf)
	raw := func(name string) ([]byte, *formats.TensorInfo, error) {
		info, ok := f.Info(name)
		if !ok {
			return nil, nil, fmt.Errorf("%s: %w: no tensor %q", f.Path(), formats.ErrInvalid, name)
		}
		b, err := mp.bytesOf(info)
		return b, info, err
	}
	v.tensor = func(name string, shape []int) (*kernels.Stored, error) {
		rows, cols := vlora.Matrix(shape)
		s, ok := mf.SchemeOf(name, shape)
		if !ok {
			b, info, err := raw(name)
			if err != nil {
				return nil, err
			}
			return storedMatrix(b, info.DType, rows, cols)
		}
		return quantMatrix(raw, name, rows, cols, s)
	}
	v.decode = func(name string, shape []int) ([]float32, error) {
		return vlora.DecodeTensor(f, mf, name, shape)
	}
	m, err := fromVLoRAOperators(mf, v)
	if err != nil {
		mp.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path, m.close = path, mp.close
	return m, nil
}

// quantMatrix returns the quantized tensor name (codes and scales read by
// raw) as a matrix over the stored bytes, after the checks of
// vlora.DecodeTensor: the code and scale lengths, and finite scales.
func quantMatrix(raw func(string) ([]byte, *formats.TensorInfo, error), name string, rows, cols int, s quant.Scheme) (*kernels.Stored, error) {
	codes, info, err := raw(name)
	if err != nil {
		return nil, err
	}
	if info.DType != formats.U8 || len(codes) != s.CodeBytes(rows, cols) {
		return nil, fmt.Errorf("tensor %q: %w: %s codes of %d bytes, %s of %d × %d needs U8 × %d", name, formats.ErrInvalid, info.DType, len(codes), s, rows, cols, s.CodeBytes(rows, cols))
	}
	scales, sinfo, err := raw(vlora.ScalesName(name))
	if err != nil {
		return nil, err
	}
	if sinfo.DType != formats.F16 || len(scales) != 2*s.NumGroups(rows, cols) {
		return nil, fmt.Errorf("tensor %q: %w: scales %s of %d bytes, want F16 × %d", name, formats.ErrInvalid, sinfo.DType, len(scales), s.NumGroups(rows, cols))
	}
	if err := checkHalfFinite(scales, false); err != nil {
		return nil, fmt.Errorf("tensor %q: scales: %w", name, err)
	}
	w := &kernels.Stored{Format: kernels.Quant, Rows: rows, Cols: cols, Raw: codes, Scales: scales, Bits: s.Bits, Group: s.GroupSize}
	return w, w.Check()
}

// fromVLoRAOperators builds the runnable model of manifest mf over v.
func fromVLoRAOperators(mf *vlora.Manifest, v *vloraOperators) (*Model, error) {
	if len(mf.Config) == 0 {
		return nil, fmt.Errorf("%w: the manifest records no config", formats.ErrInvalid)
	}
	cfg, err := formats.ParseConfig(mf.Config)
	if err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	if err := cfg.CheckLayers(mf.NumLayers); err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	net, err := transformer.LoadOperators(cfg, v, v)
	if err != nil {
		return nil, err
	}
	return &Model{Net: net, Config: cfg, StoredParams: mf.Counts.ParamsStored, StoredBytes: mf.Counts.BytesStored}, nil
}

// fromVLoRAStoredInMemory builds a Stored model over the float32 tensors
// of the in-memory vm, sharing them: each layer is base + B·A applied term
// by term.
func fromVLoRAStoredInMemory(vm *vlora.Model) (*Model, error) {
	v := newVLoRAOperators(vm.Manifest)
	get := func(name string) (*vlora.Tensor, error) {
		t, ok := vm.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("%w: no tensor %q", formats.ErrInvalid, name)
		}
		return t, nil
	}
	v.tensor = func(name string, shape []int) (*kernels.Stored, error) {
		t, err := get(name)
		if err != nil {
			return nil, err
		}
		rows, cols := vlora.Matrix(shape)
		w := &kernels.Stored{Format: kernels.F32, Rows: rows, Cols: cols, F32: t.Data}
		return w, w.Check()
	}
	v.decode = func(name string, _ []int) ([]float32, error) {
		t, err := get(name)
		if err != nil {
			return nil, err
		}
		return t.Data, nil
	}
	m, err := fromVLoRAOperators(vm.Manifest, v)
	if err != nil {
		return nil, err
	}
	m.VLoRA = vm
	return m, nil
}
