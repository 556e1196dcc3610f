package convert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// GGUFOptions configures ExpandGGUF. The zero value writes F16 matrices
// with the tokenizer.json found beside the input.
type GGUFOptions struct {
	// Type is the element type of the weight matrices: gguf.F32,
	// gguf.F16 (the default, also for the zero value), gguf.BF16 or
	// gguf.Q8_0. Vectors (norms, biases) are always F32, and a Q8_0 matrix
	// whose rows are not whole blocks of 32 is written F16, as llama.cpp's
	// own converter does.
	Type gguf.Type
	// Tokenizer is a tokenizer.json file or a directory holding one. Empty:
	// the dense model directory, or the directory of the VLoRA file.
	Tokenizer string
	// Name is general.name; empty: the input's base name.
	Name string
}

// ggufSource is what an export reads: dense tensors under their Hugging
// Face names, and the model's config.
type ggufSource interface {
	names() []string
	shape(name string) ([]int, bool)
	read(name string) ([]float32, error)
	close() error
}

type denseSource struct{ ck *formats.Checkpoint }

func (s denseSource) names() []string { return s.ck.Names() }
func (s denseSource) shape(name string) ([]int, bool) {
	info, ok := s.ck.Info(name)
	if !ok {
		return nil, false
	}
	return append([]int(nil), info.Shape...), true
}
func (s denseSource) read(name string) ([]float32, error) { return s.ck.ReadFloat32(name) }
func (s denseSource) close() error                        { return s.ck.Close() }

type vloraSource struct {
	m     *vlora.Model
	known map[string]bool
}

func (s vloraSource) names() []string { return s.m.OriginalNames() }

func (s vloraSource) shape(name string) ([]int, bool) {
	if !s.known[name] {
		return nil, false
	}
	sh, err := s.m.Shape(name)
	return sh, err == nil
}

// read returns a copy: pass-through tensors are shared with the model and
// the export transforms tensors in place.
func (s vloraSource) read(name string) ([]float32, error) {
	d, _, err := s.m.Tensor(name)
	return append([]float32(nil), d...), err
}
func (s vloraSource) close() error { return nil }

// openGGUFSource opens path as a VLoRA file (or a directory holding one)
// when it is one, else as a dense Hugging Face model directory.
func openGGUFSource(path string) (ggufSource, *formats.Config, string, error) {
	if model.IsVLoRA(path) {
		m, err := vlora.Load(path)
		if err != nil {
			return nil, nil, "", err
		}
		if len(m.Manifest.Config) == 0 {
			return nil, nil, "", fmt.Errorf("%s: %w: the VLoRA file records no config.json", path, formats.ErrInvalid)
		}
		cfg, err := formats.ParseConfig(m.Manifest.Config)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: config: %w", path, err)
		}
		dir := path
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			dir = filepath.Dir(path)
		}
		names := map[string]bool{}
		for _, n := range m.OriginalNames() {
			names[n] = true
		}
		return vloraSource{m: m, known: names}, cfg, dir, nil
	}
	ck, err := formats.OpenCheckpoint(path)
	if err != nil {
		return nil, nil, "", err
	}
	if ck.Config == nil {
		ck.Close()
		return nil, nil, "", fmt.Errorf("%s: %w: no %s", path, formats.ErrInvalid, formats.ConfigFile)
	}
	return denseSource{ck}, ck.Config, path, nil
}

// ggufTensor is one tensor of an export: where its data comes from and how
// it is rearranged on the way.
type ggufTensor struct {
	name, src string
	// shape is the source's (Hugging Face) shape after transform.
	shape []int
	// transform, when set, rearranges the source data in place or returns
	// new data.
	transform func([]float32) []float32
}

// ggufArch maps one architecture to GGUF: its metadata and its tensors.
type ggufArch interface {
	kvs(cfg *formats.Config) ([]gguf.KV, error)
	tensors(cfg *formats.Config, src ggufSource) ([]ggufTensor, error)
}

// ggufArchFor returns the mapping of cfg's architecture.
func ggufArchFor(cfg *formats.Config) (ggufArch, error) {
	switch cfg.Architecture() {
	case "LlamaForCausalLM":
		return llamaGGUF{}, nil
	case "GPT2LMHeadModel":
		return gpt2GGUF{}, nil
	}
	return nil, fmt.Errorf("%w: architecture %q: the GGUF export supports LlamaForCausalLM and GPT2LMHeadModel", formats.ErrInvalid, cfg.Architecture())
}

// ExpandGGUF writes the model at path (a VLoRA file, a directory holding
// one, or a dense Hugging Face model directory) as one GGUF file at out that
// llama.cpp loads: the dense weights under llama.cpp's tensor names and
// layouts, its hyper-parameters, and the tokenizer. A VLoRA model's layers
// are materialized (base + B·A) one tensor at a time. Everything is checked
// before the file is created; the file is written to a temporary name and
// renamed into place, so a failed or interrupted run leaves nothing behind.
func ExpandGGUF(ctx context.Context, path, out string, opt GGUFOptions) error {
	typ := opt.Type
	switch typ {
	case gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0:
	default:
		return fmt.Errorf("%w: GGUF type %v: want F32, F16, BF16 or Q8_0", formats.ErrInvalid, typ)
	}
	src, cfg, dir, err := openGGUFSource(path)
	if err != nil {
		return err
	}
	defer src.close()
	arch, err := ggufArchFor(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	archKVs, err := arch.kvs(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ts, err := arch.tensors(cfg, src)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := checkAllMapped(src, ts, cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tokPath := opt.Tokenizer
	if tokPath == "" {
		tokPath = dir
	}
	vocabKVs, err := ggufVocab(tokPath, cfg)
	if err != nil {
		return err
	}
	name := opt.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(path))
	}
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: archKVs[0].Value},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: gguf.FileType(typ)},
		{Key: "general.quantization_version", Value: uint32(2)},
	}
	kvs = append(kvs, archKVs[1:]...)
	kvs = append(kvs, vocabKVs...)
	specs := make([]gguf.Tensor, len(ts))
	for i, t := range ts {
		tt := typ
		row := t.shape[len(t.shape)-1]
		switch {
		case len(t.shape) == 1:
			tt = gguf.F32
		case tt == gguf.Q8_0 && row%gguf.BlockSize != 0:
			tt = gguf.F16
		}
		specs[i] = gguf.Tensor{Name: t.name, Shape: t.shape, Type: tt}
	}
	w, err := gguf.Create(out, kvs, specs)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return err
		}
		data, err := src.read(t.src)
		if err != nil {
			w.Abort()
			return fmt.Errorf("%s: tensor %q: %w", path, t.src, err)
		}
		if t.transform != nil {
			data = t.transform(data)
		}
		if err := w.WriteFloat32(t.name, data); err != nil {
			w.Abort()
			return fmt.Errorf("%w (from %q)", err, t.src)
		}
	}
	return w.Commit()
}

// checkAllMapped refuses a source tensor that the export would drop (an
// MLP bias, say, which llama.cpp's architecture has no place for), except
// buffers that carry no weights and a tied head stored anyway.
func checkAllMapped(src ggufSource, ts []ggufTensor, cfg *formats.Config) error {
	used := map[string]bool{}
	for _, t := range ts {
		used[t.src] = true
	}
	for _, n := range src.names() {
		switch {
		case used[n], strings.HasSuffix(n, "rotary_emb.inv_freq"), strings.HasSuffix(n, ".attn.bias"), strings.HasSuffix(n, ".attn.masked_bias"):
		case cfg.TieWordEmbeddings && n == "lm_head.weight":
		default:
			return fmt.Errorf("%w: tensor %q has no place in llama.cpp's %s architecture", formats.ErrInvalid, n, cfg.Architecture())
		}
	}
	return nil
}

// need returns the shape of the source tensor name, checked against want
// (nil: any shape).
func need(src ggufSource, name string, want ...int) ([]int, error) {
	sh, ok := src.shape(name)
	if !ok {
		return nil, fmt.Errorf("%w: no tensor %q", formats.ErrInvalid, name)
	}
	if want != nil {
		if len(sh) != len(want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the config implies %v", formats.ErrInvalid, name, sh, want)
		}
		for i := range sh {
			if sh[i] != want[i] {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, the config implies %v", formats.ErrInvalid, name, sh, want)
			}
		}
	}
	return sh, nil
}
