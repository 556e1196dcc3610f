package convert

import (
	"fmt"
	"strconv"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
)

// llamaGGUF maps LlamaForCausalLM to llama.cpp's "llama" architecture.
type llamaGGUF struct{}

// llamaLayerTensors maps each Hugging Face layer suffix to its GGUF name
// and whether its rows are permuted as query (q) or key (k) heads.
var llamaLayerTensors = []struct{ hf, gguf, permute string }{
	{"input_layernorm.weight", "attn_norm.weight", ""},
	{"self_attn.q_proj.weight", "attn_q.weight", "q"},
	{"self_attn.q_proj.bias", "attn_q.bias", "q"},
	{"self_attn.k_proj.weight", "attn_k.weight", "k"},
	{"self_attn.k_proj.bias", "attn_k.bias", "k"},
	{"self_attn.v_proj.weight", "attn_v.weight", ""},
	{"self_attn.v_proj.bias", "attn_v.bias", ""},
	{"self_attn.o_proj.weight", "attn_output.weight", ""},
	{"self_attn.o_proj.bias", "attn_output.bias", ""},
	{"post_attention_layernorm.weight", "ffn_norm.weight", ""},
	{"mlp.gate_proj.weight", "ffn_gate.weight", ""},
	{"mlp.up_proj.weight", "ffn_up.weight", ""},
	{"mlp.down_proj.weight", "ffn_down.weight", ""},
}

// llamaRequired are the layer suffixes every Llama layer stores.
var llamaRequired = map[string]bool{
	"input_layernorm.weight": true, "self_attn.q_proj.weight": true, "self_attn.k_proj.weight": true,
	"self_attn.v_proj.weight": true, "self_attn.o_proj.weight": true, "post_attention_layernorm.weight": true,
	"mlp.gate_proj.weight": true, "mlp.up_proj.weight": true, "mlp.down_proj.weight": true,
}

func (llamaGGUF) check(cfg *formats.Config) error {
	switch {
	case cfg.VocabSize < 1 || cfg.HiddenSize < 1 || cfg.NumLayers < 1 || cfg.NumHeads < 1 || cfg.NumKVHeads < 1 || cfg.HeadDim < 2 || cfg.Intermediate < 1:
		return fmt.Errorf("%w: config.json: vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim and intermediate_size must be positive", formats.ErrInvalid)
	case cfg.NumHeads%cfg.NumKVHeads != 0:
		return fmt.Errorf("%w: config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", formats.ErrInvalid, cfg.NumHeads, cfg.NumKVHeads)
	case cfg.HeadDim%2 != 0:
		return fmt.Errorf("%w: config.json: head_dim %d is odd; rotary embeddings need pairs", formats.ErrInvalid, cfg.HeadDim)
	case cfg.Act != "" && cfg.Act != "silu":
		return fmt.Errorf("%w: config.json: hidden_act %q: llama.cpp's llama architecture uses silu", formats.ErrInvalid, cfg.Act)
	}
	if rs, ok := cfg.Raw["rope_scaling"]; ok && rs != nil {
		return fmt.Errorf("%w: config.json: rope_scaling is not supported by the GGUF export", formats.ErrInvalid)
	}
	if rp, ok := cfg.Raw["rope_parameters"].(map[string]any); ok {
		if t, ok := rp["rope_type"].(string); ok && t != "default" {
			return fmt.Errorf("%w: config.json: rope_type %q is not supported by the GGUF export", formats.ErrInvalid, t)
		}
	}
	return nil
}

func (a llamaGGUF) kvs(cfg *formats.Config) ([]gguf.KV, error) {
	if err := a.check(cfg); err != nil {
		return nil, err
	}
	ctx := cfg.MaxPositions
	if ctx < 1 {
		ctx = 2048
	}
	eps := cfg.NormEps
	if eps == 0 {
		eps = 1e-6
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "llama.vocab_size", Value: uint32(cfg.VocabSize)},
		{Key: "llama.context_length", Value: uint32(ctx)},
		{Key: "llama.embedding_length", Value: uint32(cfg.HiddenSize)},
		{Key: "llama.block_count", Value: uint32(cfg.NumLayers)},
		{Key: "llama.feed_forward_length", Value: uint32(cfg.Intermediate)},
		{Key: "llama.rope.dimension_count", Value: uint32(cfg.HeadDim)},
		{Key: "llama.attention.head_count", Value: uint32(cfg.NumHeads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(cfg.NumKVHeads)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(eps)},
		{Key: "llama.rope.freq_base", Value: float32(cfg.RopeTheta)},
	}
	if cfg.HeadDim*cfg.NumHeads != cfg.HiddenSize {
		kv = append(kv,
			gguf.KV{Key: "llama.attention.key_length", Value: uint32(cfg.HeadDim)},
			gguf.KV{Key: "llama.attention.value_length", Value: uint32(cfg.HeadDim)})
	}
	return kv, nil
}

func (a llamaGGUF) tensors(cfg *formats.Config, src ggufSource) ([]ggufTensor, error) {
	if err := a.check(cfg); err != nil {
		return nil, err
	}
	h, hd, nh, nkv := cfg.HiddenSize, cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	want := map[string][]int{
		"input_layernorm.weight":          {h},
		"post_attention_layernorm.weight": {h},
		"self_attn.q_proj.weight":         {nh * hd, h},
		"self_attn.q_proj.bias":           {nh * hd},
		"self_attn.k_proj.weight":         {nkv * hd, h},
		"self_attn.k_proj.bias":           {nkv * hd},
		"self_attn.v_proj.weight":         {nkv * hd, h},
		"self_attn.v_proj.bias":           {nkv * hd},
		"self_attn.o_proj.weight":         {h, nh * hd},
		"self_attn.o_proj.bias":           {h},
		"mlp.gate_proj.weight":            {cfg.Intermediate, h},
		"mlp.up_proj.weight":              {cfg.Intermediate, h},
		"mlp.down_proj.weight":            {h, cfg.Intermediate},
	}
	var out []ggufTensor
	add := func(gname, hname string, shape []int, perm func([]float32) []float32) error {
		sh, err := need(src, hname, shape...)
		if err != nil {
			return err
		}
		out = append(out, ggufTensor{name: gname, src: hname, shape: sh, transform: perm})
		return nil
	}
	if err := add("token_embd.weight", "model.embed_tokens.weight", []int{cfg.VocabSize, h}, nil); err != nil {
		return nil, err
	}
	for l := range cfg.NumLayers {
		pre := "model.layers." + strconv.Itoa(l) + "."
		for _, t := range llamaLayerTensors {
			hname := pre + t.hf
			if _, ok := src.shape(hname); !ok && !llamaRequired[t.hf] {
				continue
			}
			var perm func([]float32) []float32
			switch t.permute {
			case "q":
				perm = func(x []float32) []float32 { return permuteRope(x, nh, hd) }
			case "k":
				perm = func(x []float32) []float32 { return permuteRope(x, nkv, hd) }
			}
			if err := add("blk."+strconv.Itoa(l)+"."+t.gguf, hname, want[t.hf], perm); err != nil {
				return nil, err
			}
		}
	}
	if err := add("output_norm.weight", "model.norm.weight", []int{h}, nil); err != nil {
		return nil, err
	}
	if _, ok := src.shape("lm_head.weight"); ok && !cfg.TieWordEmbeddings {
		if err := add("output.weight", "lm_head.weight", []int{cfg.VocabSize, h}, nil); err != nil {
			return nil, err
		}
	} else if !cfg.TieWordEmbeddings {
		return nil, fmt.Errorf("%w: no tensor \"lm_head.weight\" and tie_word_embeddings is false", formats.ErrInvalid)
	}
	return out, nil
}

// permuteRope reorders the rows of a query or key projection (or bias)
// from Hugging Face's rotate-half layout, where head h's rotary pairs are
// rows (i, i+hd/2), to the interleaved layout of llama.cpp's llama
// architecture, where they are rows (2i, 2i+1): llama.cpp's
// convert_hf_to_gguf.py LlamaModel.permute. x holds heads·hd rows.
func permuteRope(x []float32, heads, hd int) []float32 {
	cols := len(x) / (heads * hd)
	out := make([]float32, len(x))
	half := hd / 2
	for h := range heads {
		for i := range half {
			for s := range 2 {
				dst := (h*hd + 2*i + s) * cols
				srcRow := (h*hd + s*half + i) * cols
				copy(out[dst:dst+cols], x[srcRow:srcRow+cols])
			}
		}
	}
	return out
}
