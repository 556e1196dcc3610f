package transformer

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// builder maps a Hugging Face config onto a Spec. has reports whether the
// checkpoint stores a tensor, for the few choices that depend on it (an
// untied LM head, a name prefix).
type builder func(cfg *formats.Config, has func(name string) bool) (*Spec, error)

// architectures maps config.architectures[0] onto builders.
var architectures = map[string]builder{
	"LlamaForCausalLM":          llamaSpec,
	"MistralForCausalLM":        llamaSpec,
	"Qwen2ForCausalLM":          llamaSpec,
	"GPT2LMHeadModel":           gpt2Spec,
	"BertModel":                 bertSpec,
	"ViTForImageClassification": vitSpec,
}

// modelTypes maps config.model_type onto architectures, for configs without
// an architectures list.
var modelTypes = map[string]string{
	"llama":   "LlamaForCausalLM",
	"mistral": "MistralForCausalLM",
	"qwen2":   "Qwen2ForCausalLM",
	"gpt2":    "GPT2LMHeadModel",
	"bert":    "BertModel",
	"vit":     "ViTForImageClassification",
}

// ErrUnsupportedArchitecture is wrapped by the error BuildSpec (and so Load)
// returns for a config whose architecture and model_type are not among
// SupportedArchitectures. Callers branch on it with errors.Is.
var ErrUnsupportedArchitecture = errors.New("unsupported architecture")

// SupportedArchitectures returns the architecture names BuildSpec accepts,
// sorted.
func SupportedArchitectures() []string {
	out := make([]string, 0, len(architectures))
	for name := range architectures {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// BuildSpec returns the Spec of the architecture named by
// cfg.architectures[0], falling back on cfg.model_type. An unknown
// architecture is an error naming it and listing the supported ones.
func BuildSpec(cfg *formats.Config, has func(name string) bool) (*Spec, error) {
	if cfg == nil {
		return nil, fmt.Errorf("transformer: no config")
	}
	arch := cfg.Architecture()
	build, ok := architectures[arch]
	if !ok {
		if a, known := modelTypes[cfg.ModelType]; known {
			arch, build, ok = a, architectures[a], true
		}
	}
	if !ok {
		name := arch
		if name == "" {
			name = fmt.Sprintf("model_type %q", cfg.ModelType)
		} else {
			name = fmt.Sprintf("%q", name)
		}
		return nil, fmt.Errorf("transformer: %w %s (supported: %s)", ErrUnsupportedArchitecture, name, strings.Join(SupportedArchitectures(), ", "))
	}
	spec, err := build(cfg, has)
	if err != nil {
		return nil, fmt.Errorf("transformer: %s: %w", arch, err)
	}
	spec.Arch = arch
	return spec, nil
}

// requirePositive checks that every named config value is positive.
func requirePositive(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if v := pairs[i+1].(int); v <= 0 {
			return fmt.Errorf("config %s = %d, want > 0", pairs[i], v)
		}
	}
	return nil
}

// biasName returns name when on is set, "" otherwise.
func biasName(on bool, name string) string {
	if on {
		return name
	}
	return ""
}
