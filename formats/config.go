package formats

import (
	"encoding/json"
	"fmt"
	"math"
)

// ConfigFile is the name of a Hugging Face model configuration.
const ConfigFile = "config.json"

// Config is a Hugging Face config.json. The typed fields cover what the
// architectures in this project read; Raw keeps the whole document so it can
// be copied verbatim and queried for anything else.
type Config struct {
	// Architectures is the architectures list, e.g. ["LlamaForCausalLM"].
	Architectures []string
	// ModelType is model_type, e.g. "llama", "gpt2", "bert", "vit".
	ModelType string
	// VocabSize is vocab_size.
	VocabSize int
	// HiddenSize is hidden_size, n_embd or d_model.
	HiddenSize int
	// NumLayers is num_hidden_layers, n_layer or num_layers.
	NumLayers int
	// NumHeads is num_attention_heads or n_head.
	NumHeads int
	// NumKVHeads is num_key_value_heads, or NumHeads when absent.
	NumKVHeads int
	// HeadDim is head_dim, or HiddenSize/NumHeads when absent.
	HeadDim int
	// Intermediate is intermediate_size or n_inner; for GPT-2, where a null
	// n_inner means four times the hidden size, that product.
	Intermediate int
	// MaxPositions is max_position_embeddings or n_positions.
	MaxPositions int
	// TieWordEmbeddings reports whether the output head shares the input
	// embedding matrix. Hugging Face defaults it to true when absent.
	TieWordEmbeddings bool
	// RopeTheta is rope_parameters.rope_theta, or the older top-level
	// rope_theta; 10000 when neither is present.
	RopeTheta float64
	// NormEps is rms_norm_eps, layer_norm_eps or layer_norm_epsilon.
	NormEps float64
	// Act is hidden_act or activation_function.
	Act string
	// Raw is the parsed JSON document.
	Raw map[string]any
	// Bytes is the file content as read.
	Bytes []byte
}

// Architecture returns architectures[0], or "" when absent.
func (c *Config) Architecture() string {
	if len(c.Architectures) == 0 {
		return ""
	}
	return c.Architectures[0]
}

// ReadConfig reads and parses a config.json file.
func ReadConfig(path string) (*Config, error) {
	raw, err := readSmallFile(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses the bytes of a config.json document.
func ParseConfig(raw []byte) (*Config, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: config is not a JSON object: %v", ErrInvalid, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: config is null, not a JSON object", ErrInvalid)
	}
	c := &Config{Raw: m, Bytes: append([]byte(nil), raw...)}
	if a, ok := m["architectures"].([]any); ok {
		for _, v := range a {
			if s, ok := v.(string); ok {
				c.Architectures = append(c.Architectures, s)
			}
		}
	}
	c.ModelType = c.String("model_type")
	c.VocabSize = c.Int("vocab_size")
	c.HiddenSize = c.Int("hidden_size", "n_embd", "d_model")
	c.NumLayers = c.Int("num_hidden_layers", "n_layer", "num_layers")
	c.NumHeads = c.Int("num_attention_heads", "n_head")
	c.NumKVHeads = c.Int("num_key_value_heads")
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	c.HeadDim = c.Int("head_dim")
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.Intermediate = c.Int("intermediate_size", "n_inner")
	if c.Intermediate == 0 && c.ModelType == "gpt2" {
		c.Intermediate = 4 * c.HiddenSize // GPT-2's n_inner: null
	}
	c.MaxPositions = c.Int("max_position_embeddings", "n_positions")
	c.TieWordEmbeddings = true
	if v, ok := m["tie_word_embeddings"].(bool); ok {
		c.TieWordEmbeddings = v
	}
	c.RopeTheta = 10000
	if v, ok := m["rope_theta"].(float64); ok {
		c.RopeTheta = v
	}
	if rp, ok := m["rope_parameters"].(map[string]any); ok {
		if v, ok := rp["rope_theta"].(float64); ok {
			c.RopeTheta = v
		}
	}
	c.NormEps = c.Float("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon")
	c.Act = c.String("hidden_act", "activation_function")
	if err := c.checkRanges(); err != nil {
		return nil, err
	}
	return c, nil
}

// MaxConfigDim bounds every size in a config (layers, widths, vocabulary,
// positions): larger values cannot describe stored tensors and would only
// size allocations.
const MaxConfigDim = 1 << 24

// configSizeKeys are the integer fields of a config that size tensors.
var configSizeKeys = []string{
	"vocab_size", "hidden_size", "n_embd", "d_model", "num_hidden_layers", "n_layer", "num_layers",
	"num_attention_heads", "n_head", "num_key_value_heads", "head_dim", "intermediate_size", "n_inner",
	"max_position_embeddings", "n_positions", "type_vocab_size", "image_size", "patch_size",
	"num_channels", "num_labels", "sliding_window",
}

// checkRanges rejects numeric fields no checkpoint can have: sizes that are
// negative, fractional or above MaxConfigDim, a rope_theta that is not
// positive, and a negative normalisation epsilon. The error names the field.
func (c *Config) checkRanges() error {
	for _, k := range append(configSizeKeys, "rope_theta", "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon") {
		if raw, ok := c.Raw[k]; ok && raw != nil {
			if _, num := raw.(float64); !num {
				return fmt.Errorf("%w: config field %s = %.40v, want a number", ErrInvalid, k, raw)
			}
		}
	}
	for _, k := range configSizeKeys {
		v, ok := c.Raw[k].(float64)
		if !ok {
			continue
		}
		if v < 0 || v > MaxConfigDim || v != math.Trunc(v) {
			return fmt.Errorf("%w: config field %s = %g, want an integer in [0, %d]", ErrInvalid, k, v, MaxConfigDim)
		}
	}
	thetas := []any{c.Raw["rope_theta"]}
	if rp, ok := c.Raw["rope_parameters"].(map[string]any); ok {
		thetas = append(thetas, rp["rope_theta"])
	}
	for _, t := range thetas {
		if v, ok := t.(float64); ok && !(v > 0) {
			return fmt.Errorf("%w: config field rope_theta = %g, want a positive number", ErrInvalid, v)
		}
	}
	if c.NormEps < 0 {
		return fmt.Errorf("%w: config field rms_norm_eps/layer_norm_eps = %g, want >= 0", ErrInvalid, c.NormEps)
	}
	return nil
}

// Int returns the first of keys holding a number, as int; 0 when none does.
func (c *Config) Int(keys ...string) int {
	for _, k := range keys {
		if v, ok := c.Raw[k].(float64); ok {
			return int(v)
		}
	}
	return 0
}

// Float returns the first of keys holding a number; 0 when none does.
func (c *Config) Float(keys ...string) float64 {
	for _, k := range keys {
		if v, ok := c.Raw[k].(float64); ok {
			return v
		}
	}
	return 0
}

// String returns the first of keys holding a string; "" when none does.
func (c *Config) String(keys ...string) string {
	for _, k := range keys {
		if v, ok := c.Raw[k].(string); ok {
			return v
		}
	}
	return ""
}

// Bool returns the value of key, or def when it is absent or not a boolean.
func (c *Config) Bool(key string, def bool) bool {
	if v, ok := c.Raw[key].(bool); ok {
		return v
	}
	return def
}

// CheckLayers checks the config's layer count against stored, the number
// of layers the weights hold, before anything is sized by the config: a
// config that declares fewer layers would silently run another model, and
// one that declares more would size allocations for layers that do not
// exist. A config without a layer count is left to the architecture to
// reject. The error wraps ErrInvalid and names the field.
func (c *Config) CheckLayers(stored int) error {
	if c.NumLayers != 0 && c.NumLayers != stored {
		return fmt.Errorf("%w: config field num_hidden_layers = %d, but the weights hold %d layers", ErrInvalid, c.NumLayers, stored)
	}
	return nil
}
