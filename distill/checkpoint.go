package distill

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// A checkpoint is two files written atomically: the student as a VLoRA file
// at path, and the optimizer state (Adam moments, step, loss log) at
// path + ".optim". Both record the step, and a mismatched pair is refused.

const (
	stepKey = "vlora.distill.step"
	logKey  = "vlora.distill.log"
)

// OptimPath returns the optimizer-state file of a checkpoint.
func OptimPath(path string) string { return path + ".optim" }

func saveCheckpoint(path string, vm *vlora.Model, st *student, step int, log []Stats) error {
	logJSON, err := json.Marshal(log)
	if err != nil {
		return err
	}
	specs := make([]formats.TensorSpec, 0, 2*len(st.params))
	for _, p := range st.params {
		shape := []int{len(p.data)}
		specs = append(specs, formats.TensorSpec{Name: "m." + p.name, DType: formats.F32, Shape: shape},
			formats.TensorSpec{Name: "v." + p.name, DType: formats.F32, Shape: shape})
	}
	w, err := formats.Create(OptimPath(path), map[string]string{stepKey: strconv.Itoa(step), logKey: string(logJSON)}, specs)
	if err != nil {
		return err
	}
	for _, p := range st.params {
		if err := w.WriteFloat32("m."+p.name, p.m); err != nil {
			w.Abort()
			return err
		}
		if err := w.WriteFloat32("v."+p.name, p.v); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	prev := vm.Manifest.Distill
	vm.Manifest.Distill = &vlora.DistillInfo{Steps: step}
	if prev != nil {
		cp := *prev
		cp.Steps = step
		vm.Manifest.Distill = &cp
	}
	// Checkpoints keep full precision whatever the final storage: the
	// float master weights of quantization-aware training included.
	dt, plan := vm.Manifest.DType, vm.Manifest.Quant
	vm.Manifest.DType, vm.Manifest.Quant = "F32", nil
	err = vm.Save(path)
	vm.Manifest.Distill, vm.Manifest.DType, vm.Manifest.Quant = prev, dt, plan
	return err
}

// loadCheckpoint restores the student and optimizer state from path. ok is
// false when there is no checkpoint.
func loadCheckpoint(path string, vm *vlora.Model, st *student) (step int, log []Stats, ok bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, nil, false, nil
	}
	ck, err := vlora.Load(path)
	if err != nil {
		return 0, nil, false, fmt.Errorf("resume: %w", err)
	}
	if a, b := ck.Manifest.Sources, vm.Manifest.Sources; len(a) > 0 && len(b) > 0 && !slices.Equal(a, b) {
		return 0, nil, false, fmt.Errorf("resume: %s: %w: the checkpoint was made from other original files than the model (a checkpoint of another model)", path, formats.ErrInvalid)
	}
	of, err := formats.Open(OptimPath(path))
	if err != nil {
		return 0, nil, false, fmt.Errorf("resume: optimizer state: %w", err)
	}
	defer of.Close()
	md := of.Metadata()
	step, err = strconv.Atoi(md[stepKey])
	if err != nil {
		return 0, nil, false, fmt.Errorf("resume: %s: %w: no step recorded", OptimPath(path), formats.ErrInvalid)
	}
	if ck.Manifest.Distill == nil || ck.Manifest.Distill.Steps != step {
		return 0, nil, false, fmt.Errorf("resume: %s: %w: the checkpoint and its optimizer state disagree on the step", path, formats.ErrInvalid)
	}
	if err := json.Unmarshal([]byte(md[logKey]), &log); err != nil {
		return 0, nil, false, fmt.Errorf("resume: %s: %w: loss log: %v", OptimPath(path), formats.ErrInvalid, err)
	}
	if len(ck.Tensors) != len(vm.Tensors) {
		return 0, nil, false, fmt.Errorf("resume: %s: %w: the checkpoint holds %d tensors, the model %d (a checkpoint of another model?)", path, formats.ErrInvalid, len(ck.Tensors), len(vm.Tensors))
	}
	for name, t := range ck.Tensors {
		dst, ok := vm.Tensors[name]
		if !ok || len(dst.Data) != len(t.Data) {
			return 0, nil, false, fmt.Errorf("resume: %s: %w: checkpoint tensor %q does not match the model (a checkpoint of another model?)", path, formats.ErrInvalid, name)
		}
		copy(dst.Data, t.Data)
	}
	for _, p := range st.params {
		m, err := of.ReadFloat32("m." + p.name)
		if err != nil {
			return 0, nil, false, fmt.Errorf("resume: %w: %w", formats.ErrInvalid, err)
		}
		v, err := of.ReadFloat32("v." + p.name)
		if err != nil {
			return 0, nil, false, fmt.Errorf("resume: %w: %w", formats.ErrInvalid, err)
		}
		if len(m) != len(p.m) || len(v) != len(p.v) {
			return 0, nil, false, fmt.Errorf("resume: %s: %w: optimizer state for %q has the wrong size (a different --train set, or another model?)", OptimPath(path), formats.ErrInvalid, p.name)
		}
		copy(p.m, m)
		copy(p.v, v)
	}
	return step, log, true, nil
}
