package transformer

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// gpt2Spec describes GPT2LMHeadModel: learned positions, pre-norm LayerNorm
// blocks, a fused c_attn projection, Conv1D weights stored (in, out), a dense
// MLP with activation_function (gelu_new by default), a final LayerNorm and
// an LM head tied to wte unless tie_word_embeddings is false and
// lm_head.weight is stored.
func gpt2Spec(cfg *formats.Config, has func(string) bool) (*Spec, error) {
	H, L, nh, V, P := cfg.HiddenSize, cfg.NumLayers, cfg.NumHeads, cfg.VocabSize, cfg.MaxPositions
	if err := requirePositive("n_embd", H, "n_layer", L, "n_head", nh, "vocab_size", V, "n_positions", P); err != nil {
		return nil, err
	}
	if H%nh != 0 {
		return nil, fmt.Errorf("n_embd %d is not a multiple of n_head %d", H, nh)
	}
	hd := H / nh
	I := cfg.Intermediate
	if I == 0 {
		I = 4 * H
	}
	act := cfg.Act
	if act == "" {
		act = "gelu_new"
	}
	a, err := activationByName(act)
	if err != nil {
		return nil, err
	}
	eps := cfg.NormEps
	if eps == 0 {
		eps = 1e-5
	}
	scaleBase := 1.0
	if cfg.Bool("scale_attn_weights", true) {
		scaleBase = 1 / math.Sqrt(float64(hd))
	}
	byLayer := cfg.Bool("scale_attn_by_inverse_layer_idx", false)
	s := &Spec{
		Hidden: H,
		Embed: EmbedSpec{Tokens: "transformer.wte.weight", Vocab: V,
			Positions: "transformer.wpe.weight", MaxPos: P},
		FinalNorm:         &NormSpec{Kind: LayerNorm, Weight: "transformer.ln_f.weight", Bias: "transformer.ln_f.bias", Eps: eps},
		FinalNormInHidden: true,
	}
	for l := range L {
		p := fmt.Sprintf("transformer.h.%d.", l)
		conv := func(name string, in, out int) LinearSpec {
			return LinearSpec{Weight: p + name + ".weight", Bias: p + name + ".bias", In: in, Out: out, InOut: true}
		}
		norm := func(name string) NormSpec {
			return NormSpec{Kind: LayerNorm, Weight: p + name + ".weight", Bias: p + name + ".bias", Eps: eps}
		}
		scale := scaleBase
		if byLayer {
			scale /= float64(l + 1)
		}
		s.Layers = append(s.Layers, LayerSpec{
			Norm1: norm("ln_1"),
			Norm2: norm("ln_2"),
			Attn: AttentionSpec{
				QKV: conv("attn.c_attn", H, 3*H), Fused: true,
				O:     conv("attn.c_proj", H, H),
				Heads: nh, KVHeads: nh, HeadDim: hd,
				Causal: true,
				Scale:  scale,
			},
			MLP: MLPSpec{Up: conv("mlp.c_fc", H, I), Down: conv("mlp.c_proj", I, H), Act: a},
		})
	}
	head := s.Embed.Tokens
	if !cfg.TieWordEmbeddings && has("lm_head.weight") {
		head = "lm_head.weight"
	}
	s.Head = HeadSpec{Kind: HeadLM, LM: LinearSpec{Weight: head, In: H, Out: V}}
	return s, nil
}
