package transformer

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// llamaSpec describes LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM: pre-norm RMSNorm blocks, rotate-half RoPE, grouped-query
// causal attention, a SwiGLU MLP, a final RMSNorm and an LM head that is tied
// to the token embedding when tie_word_embeddings is set or lm_head.weight is
// absent. Llama and Mistral take q/k/v/o biases from attention_bias and MLP
// biases from mlp_bias; Qwen2 always has q/k/v biases and nothing else.
func llamaSpec(cfg *formats.Config, has func(string) bool) (*Spec, error) {
	H, L, nh, nkv, hd, I, V := cfg.HiddenSize, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.Intermediate, cfg.VocabSize
	if err := requirePositive("hidden_size", H, "num_hidden_layers", L, "num_attention_heads", nh,
		"num_key_value_heads", nkv, "head_dim", hd, "intermediate_size", I, "vocab_size", V); err != nil {
		return nil, err
	}
	if nh%nkv != 0 {
		return nil, fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", nh, nkv)
	}
	if hd%2 != 0 {
		return nil, fmt.Errorf("head_dim %d is odd; rotary embeddings need an even head dimension", hd)
	}
	act := cfg.Act
	if act == "" {
		act = "silu"
	}
	a, err := activationByName(act)
	if err != nil {
		return nil, err
	}
	eps := cfg.NormEps
	if eps == 0 {
		eps = 1e-6
	}
	qkvBias, oBias, mlpBias := cfg.Bool("attention_bias", false), cfg.Bool("attention_bias", false), cfg.Bool("mlp_bias", false)
	if cfg.Architecture() == "Qwen2ForCausalLM" || (cfg.Architecture() == "" && cfg.ModelType == "qwen2") {
		qkvBias, oBias, mlpBias = true, false, false
	}
	window := 0
	if w := cfg.Int("sliding_window"); w > 0 && (cfg.ModelType == "mistral" || cfg.Bool("use_sliding_window", false)) {
		window = w
	}
	s := &Spec{
		Hidden:            H,
		Embed:             EmbedSpec{Tokens: "model.embed_tokens.weight", Vocab: V},
		FinalNorm:         &NormSpec{Kind: RMSNorm, Weight: "model.norm.weight", Eps: eps},
		FinalNormInHidden: true,
	}
	for l := range L {
		p := fmt.Sprintf("model.layers.%d.", l)
		lin := func(name string, in, out int, bias bool) LinearSpec {
			return LinearSpec{Weight: p + name + ".weight", Bias: biasName(bias, p+name+".bias"), In: in, Out: out}
		}
		s.Layers = append(s.Layers, LayerSpec{
			Norm1: NormSpec{Kind: RMSNorm, Weight: p + "input_layernorm.weight", Eps: eps},
			Norm2: NormSpec{Kind: RMSNorm, Weight: p + "post_attention_layernorm.weight", Eps: eps},
			Attn: AttentionSpec{
				Q:     lin("self_attn.q_proj", H, nh*hd, qkvBias),
				K:     lin("self_attn.k_proj", H, nkv*hd, qkvBias),
				V:     lin("self_attn.v_proj", H, nkv*hd, qkvBias),
				O:     lin("self_attn.o_proj", nh*hd, H, oBias),
				Heads: nh, KVHeads: nkv, HeadDim: hd,
				Causal:    true,
				RopeTheta: cfg.RopeTheta,
				Scale:     1 / math.Sqrt(float64(hd)),
				Window:    window,
			},
			MLP: MLPSpec{
				Gated: true,
				Gate:  lin("mlp.gate_proj", H, I, mlpBias),
				Up:    lin("mlp.up_proj", H, I, mlpBias),
				Down:  lin("mlp.down_proj", I, H, mlpBias),
				Act:   a,
			},
		})
	}
	head := "lm_head.weight"
	if cfg.TieWordEmbeddings || !has(head) {
		head = s.Embed.Tokens
	}
	s.Head = HeadSpec{Kind: HeadLM, LM: LinearSpec{Weight: head, In: H, Out: V}}
	return s, nil
}
