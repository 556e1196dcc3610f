package transformer

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Input is a batch of sequences (token models) or images (ViT).
type Input struct {
	// Batch is the number of sequences or images.
	Batch int
	// Seq is the number of tokens per sequence (token models only).
	Seq int
	// IDs holds Batch×Seq token ids, row-major.
	IDs []int
	// TokenTypes optionally holds Batch×Seq token-type ids (BERT); nil
	// means all zeros.
	TokenTypes []int
	// Pixels holds Batch×C×H×W image values (ViT).
	Pixels []float32
}

// Options selects optional outputs of a pass.
type Options struct {
	// Hidden requests every hidden state (Output.Hidden).
	Hidden bool
}

// Output is the result of a forward pass. Tensors are row-major float32.
type Output struct {
	// Batch and Seq are the batch size and the number of positions per
	// item (for ViT: patches + 1). Hidden is the hidden size.
	Batch, Seq, Hidden int
	// Logits are [Batch, Seq, Vocab] for LMs and [Batch, Labels] for
	// classifiers; LogitsShape gives the shape. Nil for encoders.
	Logits      []float32
	LogitsShape []int
	// LastHidden is [Batch, Seq, Hidden]: the encoder output (BERT) or
	// the output of the final norm (ViT). Nil for LMs.
	LastHidden []float32
	// Pooler is [Batch, Hidden], the BERT pooler output, or nil.
	Pooler []float32
	// HiddenStates holds len(layers)+1 tensors [Batch, Seq, Hidden] when
	// Options.Hidden is set: index 0 is the embedding output, index i the
	// output of layer i−1; the last one is taken after the final norm for
	// decoder LMs and before it for ViT, as Hugging Face reports them.
	HiddenStates [][]float32
}

// positions returns the batch size and positions per item that in yields for
// the model, validating the input.
func (m *Model) positions(in *Input) (B, T int, err error) {
	n := &m.net
	if in == nil || in.Batch <= 0 {
		return 0, 0, fmt.Errorf("transformer: %w: batch must be positive", formats.ErrInvalid)
	}
	B = in.Batch
	if p := n.patch; p != nil {
		if want := B * p.ch * p.h * p.w_; len(in.Pixels) != want {
			return 0, 0, fmt.Errorf("transformer: %w: %d pixel values, want %d×%d×%d×%d", formats.ErrInvalid, len(in.Pixels), B, p.ch, p.h, p.w_)
		}
		return B, (p.h/p.size)*(p.w_/p.size) + 1, nil
	}
	T = in.Seq
	if T <= 0 {
		return 0, 0, fmt.Errorf("transformer: %w: sequence length must be positive", formats.ErrInvalid)
	}
	if len(in.IDs) != B*T {
		return 0, 0, fmt.Errorf("transformer: %w: %d token ids, want %d×%d", formats.ErrInvalid, len(in.IDs), B, T)
	}
	for i, id := range in.IDs {
		if id < 0 || id >= n.vocab {
			return 0, 0, fmt.Errorf("transformer: %w: token id %d at %d outside vocabulary [0,%d)", formats.ErrInvalid, id, i, n.vocab)
		}
	}
	if n.positions != nil && T > n.maxPos {
		return 0, 0, fmt.Errorf("transformer: %w: sequence length %d exceeds %d learned positions", formats.ErrInvalid, T, n.maxPos)
	}
	if in.TokenTypes != nil {
		if n.types == nil {
			return 0, 0, fmt.Errorf("transformer: %w: the model has no token types", formats.ErrInvalid)
		}
		if len(in.TokenTypes) != B*T {
			return 0, 0, fmt.Errorf("transformer: %w: %d token types, want %d×%d", formats.ErrInvalid, len(in.TokenTypes), B, T)
		}
		for i, t := range in.TokenTypes {
			if t < 0 || t >= n.numTypes {
				return 0, 0, fmt.Errorf("transformer: %w: token type %d at %d outside [0,%d)", formats.ErrInvalid, t, i, n.numTypes)
			}
		}
	}
	for i := range n.layers {
		if w := n.layers[i].attn.window; w > 0 && T > w {
			return 0, 0, fmt.Errorf("transformer: %w: sequence length %d exceeds the sliding window %d", formats.ErrInvalid, T, w)
		}
	}
	return B, T, nil
}
