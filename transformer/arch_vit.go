package transformer

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// vitSpec describes ViTForImageClassification: a patch-embedding convolution
// (stride = kernel = patch_size), a CLS token, learned position embeddings,
// pre-norm LayerNorm blocks with bidirectional attention and a dense MLP, a
// final LayerNorm and a linear classifier on the CLS position. Hidden states
// are taken before the final LayerNorm, as Hugging Face reports them.
func vitSpec(cfg *formats.Config, has func(string) bool) (*Spec, error) {
	H, L, nh, I := cfg.HiddenSize, cfg.NumLayers, cfg.NumHeads, cfg.Intermediate
	img, ps, ch := cfg.Int("image_size"), cfg.Int("patch_size"), cfg.Int("num_channels")
	if ch == 0 {
		ch = 3
	}
	labels := 2
	if m, ok := cfg.Raw["id2label"].(map[string]any); ok && len(m) > 0 {
		labels = len(m)
	}
	if n := cfg.Int("num_labels"); n > 0 {
		labels = n
	}
	if err := requirePositive("hidden_size", H, "num_hidden_layers", L, "num_attention_heads", nh,
		"intermediate_size", I, "image_size", img, "patch_size", ps); err != nil {
		return nil, err
	}
	if H%nh != 0 {
		return nil, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", H, nh)
	}
	if img%ps != 0 {
		return nil, fmt.Errorf("image_size %d is not a multiple of patch_size %d", img, ps)
	}
	hd := H / nh
	a, eps, err := encoderActEps(cfg)
	if err != nil {
		return nil, err
	}
	qkvBias := cfg.Bool("qkv_bias", true)
	e := "vit.embeddings."
	s := &Spec{
		Hidden: H,
		Embed: EmbedSpec{Patch: &PatchSpec{
			Weight: e + "patch_embeddings.projection.weight", Bias: e + "patch_embeddings.projection.bias",
			Channels: ch, Size: ps, ImageH: img, ImageW: img,
			CLS: e + "cls_token", Positions: e + "position_embeddings",
		}},
		FinalNorm: &NormSpec{Kind: LayerNorm, Weight: "vit.layernorm.weight", Bias: "vit.layernorm.bias", Eps: eps},
	}
	for l := range L {
		p := fmt.Sprintf("vit.encoder.layer.%d.", l)
		lin := func(name string, in, out int, bias bool) LinearSpec {
			return LinearSpec{Weight: p + name + ".weight", Bias: biasName(bias, p+name+".bias"), In: in, Out: out}
		}
		norm := func(name string) NormSpec {
			return NormSpec{Kind: LayerNorm, Weight: p + name + ".weight", Bias: p + name + ".bias", Eps: eps}
		}
		s.Layers = append(s.Layers, LayerSpec{
			Norm1: norm("layernorm_before"),
			Norm2: norm("layernorm_after"),
			Attn: AttentionSpec{
				Q:     lin("attention.attention.query", H, H, qkvBias),
				K:     lin("attention.attention.key", H, H, qkvBias),
				V:     lin("attention.attention.value", H, H, qkvBias),
				O:     lin("attention.output.dense", H, H, true),
				Heads: nh, KVHeads: nh, HeadDim: hd,
				Scale: 1 / math.Sqrt(float64(hd)),
			},
			MLP: MLPSpec{Up: lin("intermediate.dense", H, I, true), Down: lin("output.dense", I, H, true), Act: a},
		})
	}
	s.Head = HeadSpec{Kind: HeadClassifier, Classifier: LinearSpec{Weight: "classifier.weight", Bias: "classifier.bias", In: H, Out: labels}}
	return s, nil
}
