package formats

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want Config // Raw and Bytes are not compared
	}{
		{"llama rope_parameters", `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":256,
			"hidden_size":128,"num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":4,"head_dim":16,
			"intermediate_size":344,"max_position_embeddings":256,"rms_norm_eps":1e-5,"hidden_act":"silu",
			"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},"tie_word_embeddings":false}`,
			Config{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: 256, HiddenSize: 128,
				NumLayers: 8, NumHeads: 8, NumKVHeads: 4, HeadDim: 16, Intermediate: 344, MaxPositions: 256,
				RopeTheta: 500000, NormEps: 1e-5, Act: "silu"}},
		{"top-level rope_theta, tie default", `{"model_type":"qwen2","hidden_size":64,"num_attention_heads":4,"rope_theta":1000000}`,
			Config{ModelType: "qwen2", HiddenSize: 64, NumHeads: 4, NumKVHeads: 4, HeadDim: 16, TieWordEmbeddings: true, RopeTheta: 1e6}},
		{"rope_parameters wins over rope_theta", `{"rope_theta":1,"rope_parameters":{"rope_theta":2}}`,
			Config{TieWordEmbeddings: true, RopeTheta: 2}},
		{"rope_parameters without theta", `{"rope_theta":3,"rope_parameters":{"rope_type":"linear"}}`,
			Config{TieWordEmbeddings: true, RopeTheta: 3}},
		{"no rope theta", `{}`, Config{TieWordEmbeddings: true, RopeTheta: 10000}},
		{"non-boolean tie", `{"tie_word_embeddings":"no"}`, Config{TieWordEmbeddings: true, RopeTheta: 10000}},
		{"gpt2 names", `{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":48,"n_layer":4,"n_head":4,
			"n_inner":null,"n_positions":64,"layer_norm_epsilon":1e-5,"activation_function":"gelu_new","vocab_size":96}`,
			Config{Architectures: []string{"GPT2LMHeadModel"}, ModelType: "gpt2", VocabSize: 96, HiddenSize: 48, NumLayers: 4,
				NumHeads: 4, NumKVHeads: 4, HeadDim: 12, Intermediate: 192, MaxPositions: 64, TieWordEmbeddings: true,
				RopeTheta: 10000, NormEps: 1e-5, Act: "gelu_new"}},
		{"gpt2 explicit n_inner", `{"model_type":"gpt2","n_embd":48,"n_head":4,"n_inner":100,"tie_word_embeddings":false}`,
			Config{ModelType: "gpt2", HiddenSize: 48, NumHeads: 4, NumKVHeads: 4, HeadDim: 12, Intermediate: 100, RopeTheta: 10000}},
		{"bert", `{"architectures":["BertModel"],"model_type":"bert","hidden_size":48,"num_hidden_layers":4,
			"num_attention_heads":4,"intermediate_size":80,"layer_norm_eps":1e-12,"hidden_act":"gelu","max_position_embeddings":64,
			"type_vocab_size":2,"vocab_size":96}`,
			Config{Architectures: []string{"BertModel"}, ModelType: "bert", VocabSize: 96, HiddenSize: 48, NumLayers: 4, NumHeads: 4,
				NumKVHeads: 4, HeadDim: 12, Intermediate: 80, MaxPositions: 64, TieWordEmbeddings: true, RopeTheta: 10000,
				NormEps: 1e-12, Act: "gelu"}},
		{"vit", `{"architectures":["ViTForImageClassification"],"model_type":"vit","hidden_size":48,"num_hidden_layers":4,
			"num_attention_heads":4,"intermediate_size":80,"layer_norm_eps":1e-12,"hidden_act":"gelu","image_size":16,"patch_size":4}`,
			Config{Architectures: []string{"ViTForImageClassification"}, ModelType: "vit", HiddenSize: 48, NumLayers: 4, NumHeads: 4,
				NumKVHeads: 4, HeadDim: 12, Intermediate: 80, TieWordEmbeddings: true, RopeTheta: 10000, NormEps: 1e-12, Act: "gelu"}},
		{"t5 d_model and num_layers", `{"d_model":32,"num_layers":2,"architectures":[1,"T5Model"]}`,
			Config{Architectures: []string{"T5Model"}, HiddenSize: 32, NumLayers: 2, TieWordEmbeddings: true, RopeTheta: 10000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			if string(got.Bytes) != tc.json || got.Raw == nil {
				t.Errorf("%s: Bytes or Raw not kept", tc.name)
			}
			if got.String("model_type") != tc.want.ModelType {
				t.Errorf("%s: String(model_type) = %q", tc.name, got.String("model_type"))
			}
			g := *got
			if !equalConfig(g, tc.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tc.name, g, tc.want)
			}
		})
	}
}

// equalConfig compares the typed fields of two configs.
func equalConfig(a, b Config) bool {
	a.Raw, a.Bytes, b.Raw, b.Bytes = nil, nil, nil, nil
	return slices.Equal(a.Architectures, b.Architectures) &&
		a.ModelType == b.ModelType && a.VocabSize == b.VocabSize && a.HiddenSize == b.HiddenSize &&
		a.NumLayers == b.NumLayers && a.NumHeads == b.NumHeads && a.NumKVHeads == b.NumKVHeads &&
		a.HeadDim == b.HeadDim && a.Intermediate == b.Intermediate && a.MaxPositions == b.MaxPositions &&
		a.TieWordEmbeddings == b.TieWordEmbeddings && a.RopeTheta == b.RopeTheta && a.NormEps == b.NormEps &&
		a.Act == b.Act
}

func TestConfigAccessors(t *testing.T) {
	c, err := ParseConfig([]byte(`{"a":1.5,"b":"x","c":true,"d":null,"n":7}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"Int first present", c.Int("missing", "n", "a"), 7},
		{"Int truncates", c.Int("a"), 1},
		{"Int none", c.Int("b", "d"), 0},
		{"Float", c.Float("b", "a"), 1.5},
		{"Float none", c.Float("missing"), 0.0},
		{"String", c.String("a", "b"), "x"},
		{"String none", c.String("d"), ""},
		{"Bool", c.Bool("c", false), true},
		{"Bool default", c.Bool("b", true), true},
		{"Bool missing", c.Bool("missing", false), false},
		{"Architecture none", c.Architecture(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.got != tc.want {
				t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `null`, `"x"`, `{"a":1}x`} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(in))
			checkInvalid(t, err, "config")
		})
	}
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigFile)
	if err := os.WriteFile(p, []byte(`[1]`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadConfig(p)
	checkInvalid(t, err, p+": ", "not a JSON object")
	if _, err := ReadConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestSharedConfigs reads the config.json of every shipped model.
func TestSharedConfigs(t *testing.T) {
	shared := sharedDir(t)
	for _, tc := range []struct {
		dir  string
		want Config
	}{
		{"models/bytellama", Config{ModelType: "llama", VocabSize: 256, HiddenSize: 128, NumLayers: 8, NumHeads: 8,
			NumKVHeads: 4, HeadDim: 16, Intermediate: 344, MaxPositions: 256, RopeTheta: 10000, NormEps: 1e-5, Act: "silu"}},
		{"golden/qwen2-bias-tied", Config{ModelType: "qwen2", VocabSize: 96, HiddenSize: 48, NumLayers: 4, NumHeads: 4,
			NumKVHeads: 2, HeadDim: 12, Intermediate: 80, MaxPositions: 64, TieWordEmbeddings: true, RopeTheta: 1e6,
			NormEps: 1e-6, Act: "silu"}},
		{"golden/gpt2", Config{ModelType: "gpt2", VocabSize: 96, HiddenSize: 48, NumLayers: 4, NumHeads: 4,
			NumKVHeads: 4, HeadDim: 12, Intermediate: 192, MaxPositions: 64, TieWordEmbeddings: true, RopeTheta: 10000,
			NormEps: 1e-5, Act: "gelu_new"}},
		{"golden/bert", Config{ModelType: "bert", VocabSize: 96, HiddenSize: 48, NumLayers: 4, NumHeads: 4,
			NumKVHeads: 4, HeadDim: 12, Intermediate: 80, MaxPositions: 64, TieWordEmbeddings: true, RopeTheta: 10000,
			NormEps: 1e-12, Act: "gelu"}},
		{"golden/vit", Config{ModelType: "vit", HiddenSize: 48, NumLayers: 4, NumHeads: 4,
			NumKVHeads: 4, HeadDim: 12, Intermediate: 80, TieWordEmbeddings: true, RopeTheta: 10000,
			NormEps: 1e-12, Act: "gelu"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			c, err := ReadConfig(filepath.Join(shared, tc.dir, ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			g := *c
			g.Architectures = nil
			if !equalConfig(g, tc.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tc.dir, g, tc.want)
			}
		})
	}
}
