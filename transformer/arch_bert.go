package transformer

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// bertSpec describes BertModel: word + absolute position + token-type
// embeddings followed by a LayerNorm, post-norm blocks with bidirectional
// attention (no attention mask) and a dense MLP, and the tanh pooler on the
// first token when pooler.dense.weight is stored. Tensor names may carry a
// "bert." prefix.
func bertSpec(cfg *formats.Config, has func(string) bool) (*Spec, error) {
	H, L, nh, I, V, P := cfg.HiddenSize, cfg.NumLayers, cfg.NumHeads, cfg.Intermediate, cfg.VocabSize, cfg.MaxPositions
	types := cfg.Int("type_vocab_size")
	if types == 0 {
		types = 2
	}
	if err := requirePositive("hidden_size", H, "num_hidden_layers", L, "num_attention_heads", nh,
		"intermediate_size", I, "vocab_size", V, "max_position_embeddings", P); err != nil {
		return nil, err
	}
	if H%nh != 0 {
		return nil, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", H, nh)
	}
	if pe := cfg.String("position_embedding_type"); pe != "" && pe != "absolute" {
		return nil, fmt.Errorf("position_embedding_type %q is not supported (only absolute)", pe)
	}
	hd := H / nh
	a, eps, err := encoderActEps(cfg)
	if err != nil {
		return nil, err
	}
	pre := ""
	if !has("embeddings.word_embeddings.weight") && has("bert.embeddings.word_embeddings.weight") {
		pre = "bert."
	}
	e := pre + "embeddings."
	s := &Spec{
		Hidden: H,
		Embed: EmbedSpec{
			Tokens: e + "word_embeddings.weight", Vocab: V,
			Positions: e + "position_embeddings.weight", MaxPos: P,
			TokenTypes: e + "token_type_embeddings.weight", NumTypes: types,
			Norm: &NormSpec{Kind: LayerNorm, Weight: e + "LayerNorm.weight", Bias: e + "LayerNorm.bias", Eps: eps},
		},
	}
	for l := range L {
		p := fmt.Sprintf("%sencoder.layer.%d.", pre, l)
		lin := func(name string, in, out int) LinearSpec {
			return LinearSpec{Weight: p + name + ".weight", Bias: p + name + ".bias", In: in, Out: out}
		}
		norm := func(name string) NormSpec {
			return NormSpec{Kind: LayerNorm, Weight: p + name + ".weight", Bias: p + name + ".bias", Eps: eps}
		}
		s.Layers = append(s.Layers, LayerSpec{
			PostNorm: true,
			Norm1:    norm("attention.output.LayerNorm"),
			Norm2:    norm("output.LayerNorm"),
			Attn: AttentionSpec{
				Q:     lin("attention.self.query", H, H),
				K:     lin("attention.self.key", H, H),
				V:     lin("attention.self.value", H, H),
				O:     lin("attention.output.dense", H, H),
				Heads: nh, KVHeads: nh, HeadDim: hd,
				Scale: 1 / math.Sqrt(float64(hd)),
			},
			MLP: MLPSpec{Up: lin("intermediate.dense", H, I), Down: lin("output.dense", I, H), Act: a},
		})
	}
	s.Head = HeadSpec{Kind: HeadEncoder}
	if has(pre + "pooler.dense.weight") {
		s.Head.Pooler = &LinearSpec{Weight: pre + "pooler.dense.weight", Bias: pre + "pooler.dense.bias", In: H, Out: H}
	}
	return s, nil
}

// encoderActEps returns the activation and LayerNorm epsilon of a BERT-style
// encoder (BERT, ViT): hidden_act defaulting to "gelu" (erf) and
// layer_norm_eps defaulting to 1e-12, as Hugging Face does.
func encoderActEps(cfg *formats.Config) (Activation, float64, error) {
	act := cfg.Act
	if act == "" {
		act = "gelu"
	}
	a, err := activationByName(act)
	if err != nil {
		return 0, 0, err
	}
	eps := cfg.NormEps
	if eps == 0 {
		eps = 1e-12
	}
	return a, eps, nil
}
