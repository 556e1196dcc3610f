package transformer

import "fmt"

// NormKind selects a normalisation.
type NormKind int

const (
	// RMSNorm is y = w · x / sqrt(mean(x²) + eps).
	RMSNorm NormKind = iota
	// LayerNorm is y = w · (x − mean(x)) / sqrt(var(x) + eps) + b.
	LayerNorm
)

// String returns the name of the normalisation.
func (k NormKind) String() string {
	switch k {
	case RMSNorm:
		return "rmsnorm"
	case LayerNorm:
		return "layernorm"
	}
	return fmt.Sprintf("NormKind(%d)", int(k))
}

// Activation selects an elementwise activation function.
type Activation int

const (
	// SiLU is x·σ(x). In a gated MLP it is applied to the gate.
	SiLU Activation = iota
	// GELUTanh is the tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))),
	// Hugging Face's gelu_new and gelu_pytorch_tanh.
	GELUTanh
	// GELU is the exact 0.5x(1 + erf(x/√2)).
	GELU
	// ReLU is max(x, 0).
	ReLU
)

// String returns the name of the activation.
func (a Activation) String() string {
	switch a {
	case SiLU:
		return "silu"
	case GELUTanh:
		return "gelu_tanh"
	case GELU:
		return "gelu"
	case ReLU:
		return "relu"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// activationByName maps Hugging Face hidden_act / activation_function values
// onto activations.
func activationByName(name string) (Activation, error) {
	switch name {
	case "silu", "swish":
		return SiLU, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return GELUTanh, nil
	case "gelu":
		return GELU, nil
	case "relu":
		return ReLU, nil
	}
	return 0, fmt.Errorf("unsupported activation %q (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, relu)", name)
}

// NormSpec is a normalisation over the hidden dimension.
type NormSpec struct {
	Kind NormKind
	// Weight is the scale tensor [H]; Bias the shift [H] ("" for none; always
	// "" for RMSNorm).
	Weight, Bias string
	Eps          float64
}

// LinearSpec is an affine map y = x·Wᵀ + b from In to Out features.
type LinearSpec struct {
	// Weight is stored as [Out, In] (torch.nn.Linear), or [In, Out] when
	// InOut is set (GPT-2's Conv1D).
	Weight string
	// Bias is the [Out] bias, or "" for none.
	Bias    string
	In, Out int
	InOut   bool
}

// weightShape returns the stored shape of the weight.
func (l LinearSpec) weightShape() []int {
	if l.InOut {
		return []int{l.In, l.Out}
	}
	return []int{l.Out, l.In}
}

// AttentionSpec is multi-head (optionally grouped-query) self-attention.
//
// Queries, keys and values come either from three projections Q, K, V or
// from one fused projection QKV whose output columns are the queries, then
// the keys, then the values. Query head h uses key/value head
// h / (Heads/KVHeads), as Hugging Face's repeat_kv does.
type AttentionSpec struct {
	Q, K, V LinearSpec
	QKV     LinearSpec
	Fused   bool
	O       LinearSpec
	// Heads and KVHeads count query and key/value heads of HeadDim each.
	Heads, KVHeads, HeadDim int
	// Causal masks keys after the query position.
	Causal bool
	// RopeTheta is the base of rotate-half rotary position embeddings
	// applied to queries and keys; 0 means none.
	RopeTheta float64
	// Scale multiplies the scores q·k; usually 1/√HeadDim.
	Scale float64
	// Window, when positive, is a sliding-window length; sequences longer
	// than Window are rejected.
	Window int
}

// MLPSpec is the feed-forward block. When Gated it computes
// Down(act(Gate(x)) ⊙ Up(x)) (SwiGLU for SiLU); otherwise Down(act(Up(x))).
type MLPSpec struct {
	Gated          bool
	Gate, Up, Down LinearSpec
	Act            Activation
}

// LayerSpec is one transformer block. A pre-norm block computes
// x += Attn(Norm1(x)); x += MLP(Norm2(x)). A post-norm block (BERT) computes
// x = Norm1(x + Attn(x)); x = Norm2(x + MLP(x)).
type LayerSpec struct {
	PostNorm     bool
	Norm1, Norm2 NormSpec
	Attn         AttentionSpec
	MLP          MLPSpec
}

// EmbedSpec describes how the first hidden state is formed from the inputs.
// Token models sum the token embedding, the learned position embedding
// (when Positions is set) and the token-type embedding (when TokenTypes is
// set), then apply Norm when it is set. Image models use Patch instead.
type EmbedSpec struct {
	Tokens     string
	Vocab      int
	Positions  string
	MaxPos     int
	TokenTypes string
	NumTypes   int
	Norm       *NormSpec
	Patch      *PatchSpec
}

// PatchSpec is a ViT patch embedding: a convolution with kernel and stride
// Size over Channels×ImageH×ImageW images, followed by a prepended CLS token
// and learned position embeddings over 1 + patch-count positions.
type PatchSpec struct {
	Weight, Bias   string
	Channels, Size int
	ImageH, ImageW int
	CLS, Positions string
}

// Patches returns the number of patches per image.
func (p *PatchSpec) Patches() int { return (p.ImageH / p.Size) * (p.ImageW / p.Size) }

// HeadKind selects the output head.
type HeadKind int

const (
	// HeadLM produces next-token logits at every position.
	HeadLM HeadKind = iota
	// HeadEncoder returns the last hidden state and, when Pooler is set,
	// tanh(Pooler(first token)).
	HeadEncoder
	// HeadClassifier applies Classifier to the first (CLS) position after
	// the final norm.
	HeadClassifier
)

// HeadSpec is the output head.
type HeadSpec struct {
	Kind HeadKind
	// LM is the LM head; its weight may name the token embedding (tied).
	LM LinearSpec
	// Pooler is the BERT pooler dense layer, or nil.
	Pooler *LinearSpec
	// Classifier is the image classification layer.
	Classifier LinearSpec
}

// Spec is a complete architecture description: what the engine runs.
type Spec struct {
	// Arch is the architecture name it was built for.
	Arch   string
	Hidden int
	Embed  EmbedSpec
	Layers []LayerSpec
	// FinalNorm is applied after the last layer, or nil.
	FinalNorm *NormSpec
	// FinalNormInHidden reports whether the last hidden state (index
	// len(Layers)) is taken after FinalNorm (decoder LMs) or before it (ViT).
	FinalNormInHidden bool
	Head              HeadSpec
}
