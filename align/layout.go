// Package align re-expresses the layers of a Llama-family checkpoint in the
// coordinates that bring each layer closest to its compound's reference,
// without changing the function the model computes: the intermediate
// neurons of the MLP are permuted, the key/value groups and the query heads
// within each group are permuted, each value head is rotated (and the output
// projection's columns by the inverse rotation), and each rotary plane of the
// query and key heads is rotated in 2-D, which commutes with the rotary
// embedding. The hidden states between blocks are unchanged.
package align

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// ErrUnsupported reports a checkpoint whose layers alignment cannot
// transform exactly. Errors wrapping it also wrap formats.ErrInvalid.
var ErrUnsupported = errors.New("symmetry alignment is not supported")

// role is the part a layer tensor plays under a Transform.
type role int

const (
	neutral role = iota // unchanged: norms, output biases
	qWeight
	qBias
	kWeight
	kBias
	vWeight
	vBias
	oWeight
	gateWeight
	gateBias
	upWeight
	upBias
	downWeight
)

// suffixRoles names the layer tensors of the supported architectures.
var suffixRoles = map[string]role{
	"input_layernorm.weight":          neutral,
	"post_attention_layernorm.weight": neutral,
	"self_attn.q_proj.weight":         qWeight,
	"self_attn.q_proj.bias":           qBias,
	"self_attn.k_proj.weight":         kWeight,
	"self_attn.k_proj.bias":           kBias,
	"self_attn.v_proj.weight":         vWeight,
	"self_attn.v_proj.bias":           vBias,
	"self_attn.o_proj.weight":         oWeight,
	"self_attn.o_proj.bias":           neutral,
	"mlp.gate_proj.weight":            gateWeight,
	"mlp.gate_proj.bias":              gateBias,
	"mlp.up_proj.weight":              upWeight,
	"mlp.up_proj.bias":                upBias,
	"mlp.down_proj.weight":            downWeight,
	"mlp.down_proj.bias":              neutral,
}

// supported lists the architectures with pre-norm blocks, rotate-half
// rotary embeddings on the whole head, grouped-query attention and a SwiGLU
// MLP, as config.json's architectures or, without it, model_type name them.
var supported = []string{"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "llama", "mistral", "qwen2"}

// Layout is the geometry of one layer of a supported checkpoint.
type Layout struct {
	Heads, KVHeads, HeadDim, Hidden, Intermediate int
	// roles maps each layer suffix to its role.
	roles map[string]role
}

// group is the number of query heads per key/value head.
func (l *Layout) group() int { return l.Heads / l.KVHeads }

// NewLayout checks that the layer stack st of the checkpoint configured by
// cfg can be aligned and returns its geometry. Other architectures, partial
// rotary embeddings and unknown layer tensors wrap ErrUnsupported.
func NewLayout(cfg *formats.Config, st *vlora.Stack) (*Layout, error) {
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: %s", formats.ErrInvalid, ErrUnsupported, fmt.Sprintf(format, args...))
	}
	if cfg == nil {
		return nil, unsupported("no config.json to read the attention geometry from")
	}
	arch := cfg.Architecture()
	if arch == "" {
		arch = cfg.ModelType
	}
	if !slices.Contains(supported, arch) {
		return nil, unsupported("architecture %q (supported: Llama, Mistral and Qwen2 causal LMs)", arch)
	}
	if f := cfg.Float("partial_rotary_factor"); f != 0 && f != 1 {
		return nil, unsupported("partial rotary embeddings (partial_rotary_factor %v)", f)
	}
	lay := &Layout{Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim,
		Hidden: cfg.HiddenSize, Intermediate: cfg.Intermediate, roles: map[string]role{}}
	if lay.Heads <= 0 || lay.KVHeads <= 0 || lay.HeadDim <= 0 || lay.Heads%lay.KVHeads != 0 || lay.HeadDim%2 != 0 {
		return nil, fmt.Errorf("%w: attention geometry: %d heads, %d key/value heads, head dimension %d", formats.ErrInvalid, lay.Heads, lay.KVHeads, lay.HeadDim)
	}
	q, kv, h, in := lay.Heads*lay.HeadDim, lay.KVHeads*lay.HeadDim, lay.Hidden, lay.Intermediate
	shapes := map[role][]int{
		qWeight: {q, h}, qBias: {q}, kWeight: {kv, h}, kBias: {kv}, vWeight: {kv, h}, vBias: {kv},
		oWeight: {h, q}, gateWeight: {in, h}, gateBias: {in}, upWeight: {in, h}, upBias: {in}, downWeight: {h, in},
	}
	seen := map[role]bool{}
	for _, s := range st.Suffixes {
		r, ok := suffixRoles[s]
		if !ok {
			return nil, unsupported("layer tensor %q has no known transform", s)
		}
		if want, ok := shapes[r]; ok && !slices.Equal(st.Shapes[s], want) {
			return nil, fmt.Errorf("%w: layer tensor %s has shape %v, the config implies %v", formats.ErrInvalid, s, st.Shapes[s], want)
		}
		lay.roles[s] = r
		seen[r] = true
	}
	for _, r := range []role{qWeight, kWeight, vWeight, oWeight, gateWeight, upWeight, downWeight} {
		if !seen[r] {
			return nil, unsupported("the layers lack a %s", roleSuffix(r))
		}
	}
	return lay, nil
}

// roleSuffix returns the suffix of role r.
func roleSuffix(r role) string {
	for s, rr := range suffixRoles {
		if rr == r && r != neutral {
			return s
		}
	}
	return ""
}
