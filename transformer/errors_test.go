package transformer

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

func TestUnknownArchitecture(t *testing.T) {
	for _, tc := range []struct {
		json, wantName string
	}{
		{`{"architectures":["MambaForCausalLM"],"model_type":"mamba"}`, `"MambaForCausalLM"`},
		{`{"model_type":"t5"}`, `model_type "t5"`},
	} {
		t.Run(tc.wantName, func(t *testing.T) {
			t.Parallel()
			cfg, err := formats.ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			_, err = BuildSpec(cfg, func(string) bool { return false })
			if err == nil {
				t.Fatalf("%s accepted", tc.json)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantName) {
				t.Errorf("error %q does not name %s", msg, tc.wantName)
			}
			for _, a := range SupportedArchitectures() {
				if !strings.Contains(msg, a) {
					t.Errorf("error %q does not list %s", msg, a)
				}
			}
		})
	}
	// model_type alone selects the architecture.
	cfg, _ := formats.ParseConfig([]byte(`{"model_type":"gpt2","n_embd":8,"n_layer":1,"n_head":2,"n_positions":4,"vocab_size":5}`))
	if s, err := BuildSpec(cfg, func(string) bool { return false }); err != nil || s.Arch != "GPT2LMHeadModel" {
		t.Errorf("model_type fallback: %v, %v", s, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, json string }{
		{"zero heads", `{"architectures":["LlamaForCausalLM"],"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":0,"intermediate_size":4,"vocab_size":5}`},
		{"gqa ratio", `{"architectures":["LlamaForCausalLM"],"hidden_size":12,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2,"intermediate_size":4,"vocab_size":5}`},
		{"activation", `{"architectures":["GPT2LMHeadModel"],"n_embd":8,"n_layer":1,"n_head":2,"n_positions":4,"vocab_size":5,"activation_function":"swiglu_x"}`},
		{"vit patch", `{"architectures":["ViTForImageClassification"],"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4,"image_size":10,"patch_size":4}`},
		{"bert positions", `{"architectures":["BertModel"],"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4,"vocab_size":5,"max_position_embeddings":8,"position_embedding_type":"relative_key"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := formats.ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := BuildSpec(cfg, func(string) bool { return false }); err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	m := randomModel(t, tinyConfigs[0].json, true, 1)
	w := MapWeights{}
	for name, p := range m.Params {
		w[name] = p
	}
	// A missing tensor is reported by name and wraps ErrNotFound.
	miss := MapWeights{}
	for k, v := range w {
		if k != "model.layers.1.mlp.up_proj.weight" {
			miss[k] = v
		}
	}
	_, err := Load(m.Config, miss)
	if err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight") {
		t.Errorf("missing tensor: %v", err)
	}
	// A wrong shape is reported by name.
	bad := MapWeights{}
	for k, v := range w {
		bad[k] = v
	}
	up := w["model.layers.0.mlp.up_proj.weight"]
	bad["model.layers.0.mlp.up_proj.weight"] = &Param{Shape: []int{up.Shape[1], up.Shape[0]}, Data: up.Data}
	if _, err := Load(m.Config, bad); err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight") {
		t.Errorf("transposed tensor: %v", err)
	}
	// Loading copies: changing the source later does not change the model.
	m2, err := Load(m.Config, w)
	if err != nil {
		t.Fatal(err)
	}
	w["model.norm.weight"].Data[0] += 1
	if m2.Params["model.norm.weight"].Data[0] == w["model.norm.weight"].Data[0] {
		t.Error("the model shares memory with its weight source")
	}
}

func TestSpecErrors(t *testing.T) {
	m := randomModel(t, tinyConfigs[0].json, true, 1)
	w := MapWeights(m.Params)
	for name, mutate := range map[string]func(s *Spec){
		"activation": func(s *Spec) { s.Layers[1].MLP.Act = Activation(9) },
		"norm kind":  func(s *Spec) { s.Layers[0].Norm2.Kind = NormKind(5) },
		"heads":      func(s *Spec) { s.Layers[0].Attn.KVHeads = 3 },
		"head kind":  func(s *Spec) { s.Head.Kind = HeadKind(7) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec, err := BuildSpec(m.Config, w.Has)
			if err != nil {
				t.Fatal(err)
			}
			mutate(spec)
			if _, err := LoadSpec(spec, w); err == nil {
				t.Errorf("%s: invalid spec accepted", name)
			}
		})
	}
}

func TestTiedHead(t *testing.T) {
	m := randomModel(t, tinyConfigs[1].json, false, 2) // qwen2, tied
	if _, ok := m.Params["lm_head.weight"]; ok {
		t.Error("tied model has an lm_head.weight parameter")
	}
	if m.net.lm.w != m.net.tokens {
		t.Error("tied head does not use the token embedding")
	}
	u := randomModel(t, tinyConfigs[0].json, true, 1) // llama, untied
	if u.net.lm.w == u.net.tokens || u.Params["lm_head.weight"] == nil {
		t.Error("untied head shares the token embedding")
	}
}

func TestInputErrors(t *testing.T) {
	m := randomModel(t, tinyConfigs[2].json, false, 3) // gpt2: vocab 17, 80 positions
	ids := make([]int, 2*5)
	for _, tc := range []struct {
		name string
		in   *Input
	}{
		{"nil", nil},
		{"zero batch", &Input{Batch: 0, Seq: 5, IDs: ids}},
		{"length", &Input{Batch: 2, Seq: 4, IDs: ids}},
		{"id range", &Input{Batch: 1, Seq: 2, IDs: []int{3, 17}}},
		{"negative id", &Input{Batch: 1, Seq: 2, IDs: []int{-1, 0}}},
		{"positions", &Input{Batch: 1, Seq: 81, IDs: make([]int, 81)}},
		{"token types", &Input{Batch: 2, Seq: 5, IDs: ids, TokenTypes: ids}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Forward(tc.in, Options{}); err == nil || !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("%s: %v", tc.name, err)
			}
		})
	}
	v := randomModel(t, tinyConfigs[4].json, false, 5)
	if _, err := v.Forward(&Input{Batch: 1, Pixels: make([]float32, 10)}, Options{}); err == nil {
		t.Error("short pixel buffer accepted")
	}
}

func TestBackwardErrors(t *testing.T) {
	m := randomModel(t, tinyConfigs[0].json, true, 1)
	tr := m.NewTrainer()
	if _, err := tr.Backward(&OutputGrad{}); !errors.Is(err, errNoForward) {
		t.Errorf("Backward before Forward: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	in := randomInput(m, 5, rng)
	out, err := tr.Forward(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*OutputGrad{
		nil,
		{Logits: make([]float32, len(out.Logits)-1)},
		{Hidden: map[int][]float32{3: make([]float32, 2*5*24)}},
		{Hidden: map[int][]float32{1: make([]float32, 7)}},
		{LastHidden: make([]float32, 2*5*24)},
		{Pooler: make([]float32, 2*24)},
	} {
		if _, err := tr.Backward(g); err == nil {
			t.Errorf("bad gradient %+v accepted", g)
		}
	}
	// A zero output gradient gives zero parameter gradients, after a
	// non-zero one (buffers are cleared between calls).
	if _, err := tr.Backward(&OutputGrad{Logits: randSlice(rng, len(out.Logits), 1)}); err != nil {
		t.Fatal(err)
	}
	grads, err := tr.Backward(&OutputGrad{})
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range grads {
		for _, v := range g.Data {
			if v != 0 {
				t.Fatalf("%s: non-zero gradient %g for a zero loss", name, v)
			}
		}
	}
}
