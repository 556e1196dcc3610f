// Package synth writes synthetic Hugging Face checkpoints of realistic shape
// for benchmarks, streaming one tensor at a time so that even
// billion-parameter models are written in bounded memory.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
)

// LlamaShape gives the sizes of a Llama-architecture model.
type LlamaShape struct {
	Layers, Hidden, Intermediate, Heads, KVHeads, Vocab int
}

// TinyLlama is the shape of TinyLlama-1.1B (about 1.1 B parameters).
var TinyLlama = LlamaShape{Layers: 22, Hidden: 2048, Intermediate: 5632, Heads: 32, KVHeads: 4, Vocab: 32000}

// Shapes are the named shapes of the scaling benchmarks, from about 30 M to
// 1.1 B parameters. "smollm-135m" is the shape of SmolLM-135M (tied there,
// untied here).
var Shapes = map[string]LlamaShape{
	"30m":         {Layers: 6, Hidden: 512, Intermediate: 1376, Heads: 8, KVHeads: 4, Vocab: 16000},
	"smollm-135m": {Layers: 30, Hidden: 576, Intermediate: 1536, Heads: 9, KVHeads: 3, Vocab: 49152},
	"500m":        {Layers: 24, Hidden: 1024, Intermediate: 4864, Heads: 16, KVHeads: 4, Vocab: 32000},
	"tinyllama":   TinyLlama,
}

// Params returns the parameter count of the shape (untied head).
func (s LlamaShape) Params() int64 {
	hd := s.Hidden / s.Heads
	kv := s.KVHeads * hd
	layer := int64(s.Hidden)*int64(s.Hidden)*2 + int64(kv)*int64(s.Hidden)*2 +
		3*int64(s.Intermediate)*int64(s.Hidden) + 2*int64(s.Hidden)
	return int64(s.Layers)*layer + 2*int64(s.Vocab)*int64(s.Hidden) + int64(s.Hidden)
}

// WriteLlama writes config.json and model.safetensors for shape into dir,
// in dtype. Weights are independent Gaussians scaled by 1/√fan-in, so that
// layer differences are of the weights' own scale (‖W_l − W_0‖ ≈ 1.4‖W_l‖,
// near the 1.3 measured on trained models) and have flat spectra, the hard
// case for a low-rank increment.
func WriteLlama(dir string, s LlamaShape, dtype formats.DType, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hd := s.Hidden / s.Heads
	type t struct {
		name  string
		shape []int
		norm  bool
	}
	var ts []t
	ts = append(ts, t{"model.embed_tokens.weight", []int{s.Vocab, s.Hidden}, false})
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			t{p + "input_layernorm.weight", []int{s.Hidden}, true},
			t{p + "self_attn.q_proj.weight", []int{s.Heads * hd, s.Hidden}, false},
			t{p + "self_attn.k_proj.weight", []int{s.KVHeads * hd, s.Hidden}, false},
			t{p + "self_attn.v_proj.weight", []int{s.KVHeads * hd, s.Hidden}, false},
			t{p + "self_attn.o_proj.weight", []int{s.Hidden, s.Heads * hd}, false},
			t{p + "post_attention_layernorm.weight", []int{s.Hidden}, true},
			t{p + "mlp.gate_proj.weight", []int{s.Intermediate, s.Hidden}, false},
			t{p + "mlp.up_proj.weight", []int{s.Intermediate, s.Hidden}, false},
			t{p + "mlp.down_proj.weight", []int{s.Hidden, s.Intermediate}, false},
		)
	}
	ts = append(ts, t{"model.norm.weight", []int{s.Hidden}, true}, t{"lm_head.weight", []int{s.Vocab, s.Hidden}, false})
	specs := make([]formats.TensorSpec, len(ts))
	for i, x := range ts {
		specs[i] = formats.TensorSpec{Name: x.name, DType: dtype, Shape: x.shape}
	}
	w, err := formats.Create(filepath.Join(dir, formats.SingleFile), map[string]string{"format": "pt"}, specs)
	if err != nil {
		return err
	}
	for i, x := range ts {
		n := 1
		for _, d := range x.shape {
			n *= d
		}
		data := make([]float32, n)
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		if x.norm {
			for j := range data {
				data[j] = 1 + 0.1*float32(rng.NormFloat64())
			}
		} else {
			scale := float32(1 / math.Sqrt(float64(x.shape[len(x.shape)-1])))
			for j := range data {
				data[j] = scale * float32(rng.NormFloat64())
			}
		}
		if err := w.WriteFloat32(x.name, data); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": %d,
  "intermediate_size": %d,
  "num_attention_heads": %d,
  "num_key_value_heads": %d,
  "num_hidden_layers": %d,
  "vocab_size": %d,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "max_position_embeddings": 2048,
  "hidden_act": "silu",
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16"
}
`, s.Hidden, s.Intermediate, s.Heads, s.KVHeads, s.Layers, s.Vocab)
	return formats.WriteFileAtomic(filepath.Join(dir, formats.ConfigFile), []byte(cfg))
}
