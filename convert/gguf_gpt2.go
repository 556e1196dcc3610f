package convert

import (
	"fmt"
	"strconv"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
)

// gpt2GGUF maps GPT2LMHeadModel to llama.cpp's "gpt2" architecture. GPT-2's
// Conv1D weights are stored (in, out); GGUF wants (out, in), so they are
// transposed.
type gpt2GGUF struct{}

func (gpt2GGUF) check(cfg *formats.Config) error {
	switch {
	case cfg.VocabSize < 1 || cfg.HiddenSize < 1 || cfg.NumLayers < 1 || cfg.NumHeads < 1 || cfg.Intermediate < 1 || cfg.MaxPositions < 1:
		return fmt.Errorf("%w: config.json: vocab_size, n_embd, n_layer, n_head and n_positions must be positive", formats.ErrInvalid)
	case cfg.HiddenSize%cfg.NumHeads != 0:
		return fmt.Errorf("%w: config.json: n_embd %d is not a multiple of n_head %d", formats.ErrInvalid, cfg.HiddenSize, cfg.NumHeads)
	case cfg.Act != "" && cfg.Act != "gelu_new" && cfg.Act != "gelu_pytorch_tanh":
		return fmt.Errorf("%w: config.json: activation_function %q: llama.cpp's gpt2 architecture uses the tanh GELU (gelu_new)", formats.ErrInvalid, cfg.Act)
	}
	for _, k := range []string{"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"} {
		if cfg.Bool(k, false) {
			return fmt.Errorf("%w: config.json: %s is not supported by llama.cpp's gpt2 architecture", formats.ErrInvalid, k)
		}
	}
	if !cfg.Bool("scale_attn_weights", true) {
		return fmt.Errorf("%w: config.json: scale_attn_weights false is not supported by llama.cpp's gpt2 architecture", formats.ErrInvalid)
	}
	return nil
}

func (a gpt2GGUF) kvs(cfg *formats.Config) ([]gguf.KV, error) {
	if err := a.check(cfg); err != nil {
		return nil, err
	}
	eps := cfg.NormEps
	if eps == 0 {
		eps = 1e-5
	}
	return []gguf.KV{
		{Key: "general.architecture", Value: "gpt2"},
		{Key: "gpt2.vocab_size", Value: uint32(cfg.VocabSize)},
		{Key: "gpt2.context_length", Value: uint32(cfg.MaxPositions)},
		{Key: "gpt2.embedding_length", Value: uint32(cfg.HiddenSize)},
		{Key: "gpt2.feed_forward_length", Value: uint32(cfg.Intermediate)},
		{Key: "gpt2.block_count", Value: uint32(cfg.NumLayers)},
		{Key: "gpt2.attention.head_count", Value: uint32(cfg.NumHeads)},
		{Key: "gpt2.attention.layer_norm_epsilon", Value: float32(eps)},
	}, nil
}

func (a gpt2GGUF) tensors(cfg *formats.Config, src ggufSource) ([]ggufTensor, error) {
	if err := a.check(cfg); err != nil {
		return nil, err
	}
	h, ff := cfg.HiddenSize, cfg.Intermediate
	prefix := "transformer."
	if _, ok := src.shape("wte.weight"); ok {
		prefix = ""
	}
	var out []ggufTensor
	add := func(gname, hname string, shape ...int) error {
		sh, err := need(src, prefix+hname, shape...)
		if err != nil {
			return err
		}
		out = append(out, ggufTensor{name: gname, src: prefix + hname, shape: sh})
		return nil
	}
	// addT adds a Conv1D weight stored (in, out), transposed to (out, in).
	addT := func(gname, hname string, in, outDim int) error {
		if _, err := need(src, prefix+hname, in, outDim); err != nil {
			return err
		}
		out = append(out, ggufTensor{name: gname, src: prefix + hname, shape: []int{outDim, in},
			transform: func(x []float32) []float32 { return transpose(x, in, outDim) }})
		return nil
	}
	steps := []func() error{
		func() error { return add("token_embd.weight", "wte.weight", cfg.VocabSize, h) },
		func() error { return add("position_embd.weight", "wpe.weight", cfg.MaxPositions, h) },
	}
	for l := range cfg.NumLayers {
		p, b := "h."+strconv.Itoa(l)+".", "blk."+strconv.Itoa(l)+"."
		steps = append(steps,
			func() error { return add(b+"attn_norm.weight", p+"ln_1.weight", h) },
			func() error { return add(b+"attn_norm.bias", p+"ln_1.bias", h) },
			func() error { return addT(b+"attn_qkv.weight", p+"attn.c_attn.weight", h, 3*h) },
			func() error { return add(b+"attn_qkv.bias", p+"attn.c_attn.bias", 3*h) },
			func() error { return addT(b+"attn_output.weight", p+"attn.c_proj.weight", h, h) },
			func() error { return add(b+"attn_output.bias", p+"attn.c_proj.bias", h) },
			func() error { return add(b+"ffn_norm.weight", p+"ln_2.weight", h) },
			func() error { return add(b+"ffn_norm.bias", p+"ln_2.bias", h) },
			func() error { return addT(b+"ffn_up.weight", p+"mlp.c_fc.weight", h, ff) },
			func() error { return add(b+"ffn_up.bias", p+"mlp.c_fc.bias", ff) },
			func() error { return addT(b+"ffn_down.weight", p+"mlp.c_proj.weight", ff, h) },
			func() error { return add(b+"ffn_down.bias", p+"mlp.c_proj.bias", h) },
		)
	}
	steps = append(steps,
		func() error { return add("output_norm.weight", "ln_f.weight", h) },
		func() error { return add("output_norm.bias", "ln_f.bias", h) },
	)
	for _, f := range steps {
		if err := f(); err != nil {
			return nil, err
		}
	}
	if !cfg.TieWordEmbeddings {
		sh, err := need(src, "lm_head.weight", cfg.VocabSize, h)
		if err != nil {
			return nil, err
		}
		out = append(out, ggufTensor{name: "output.weight", src: "lm_head.weight", shape: sh})
	}
	return out, nil
}

// transpose returns the [cols, rows] transpose of the row-major [rows, cols]
// matrix x.
func transpose(x []float32, rows, cols int) []float32 {
	out := make([]float32, len(x))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = x[i*cols+j]
		}
	}
	return out
}
