// Package verify runs an original checkpoint and its VLoRA compression side
// by side and measures how far apart they are: integrity of the compressed
// file, KL divergence, top-1 agreement, perplexity, accuracy and per-layer
// hidden-state errors.
package verify

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Loaded is a runnable model with a description of where it came from.
type Loaded struct {
	Model *transformer.Model
	// VLoRA is set when the model was loaded from a VLoRA file.
	VLoRA *vlora.Model
	// Path is the directory or file loaded.
	Path   string
	Config *formats.Config
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

// LoadModel loads a Hugging Face model directory or a VLoRA file (or a
// directory holding one) as a runnable transformer.
func LoadModel(path string) (*Loaded, error) {
	if IsVLoRA(path) {
		vm, err := vlora.Load(path)
		if err != nil {
			return nil, err
		}
		return FromVLoRA(vm, path)
	}
	ck, err := formats.OpenCheckpoint(path)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if ck.Config == nil {
		return nil, fmt.Errorf("%s: %w: no config.json", path, formats.ErrInvalid)
	}
	m, err := transformer.Load(ck.Config, transformer.CheckpointWeights{Checkpoint: ck})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Loaded{Model: m, Path: path, Config: ck.Config}, nil
}

// FromVLoRA builds a runnable transformer from an in-memory VLoRA model,
// materializing each layer's dense weights.
func FromVLoRA(vm *vlora.Model, path string) (*Loaded, error) {
	if len(vm.Manifest.Config) == 0 {
		return nil, fmt.Errorf("%s: %w: the manifest records no config", path, formats.ErrInvalid)
	}
	cfg, err := formats.ParseConfig(vm.Manifest.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := transformer.Load(cfg, vm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Loaded{Model: m, VLoRA: vm, Path: path, Config: cfg}, nil
}
