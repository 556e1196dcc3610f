package transformer

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// tinyConfigs are small random models covering every block kind: GQA with
// head_dim ≠ hidden/heads, q/k/v/o and MLP biases, tied and untied heads,
// learned positions, fused Conv1D projections, post-norm with token types
// and pooler, and the ViT patch embedding.
var tinyConfigs = []struct {
	name   string
	json   string
	untied bool
	T      int
}{
	{"llama", `{"architectures":["LlamaForCausalLM"],"hidden_size":24,"num_hidden_layers":2,"num_attention_heads":4,
		"num_key_value_heads":2,"head_dim":8,"intermediate_size":20,"vocab_size":19,"rms_norm_eps":1e-5,
		"attention_bias":true,"mlp_bias":true,"tie_word_embeddings":false,"rope_theta":10000}`, true, 70},
	{"qwen2-tied", `{"architectures":["Qwen2ForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,
		"num_key_value_heads":1,"intermediate_size":12,"vocab_size":11,"rms_norm_eps":1e-6,
		"tie_word_embeddings":true,"rope_parameters":{"rope_theta":1000000.0}}`, false, 9},
	{"gpt2", `{"architectures":["GPT2LMHeadModel"],"n_embd":24,"n_layer":2,"n_head":3,"n_positions":80,"vocab_size":17,
		"activation_function":"gelu_new","layer_norm_epsilon":1e-5}`, false, 70},
	{"bert", `{"architectures":["BertModel"],"hidden_size":24,"num_hidden_layers":2,"num_attention_heads":2,
		"intermediate_size":20,"vocab_size":15,"max_position_embeddings":32,"type_vocab_size":2,
		"hidden_act":"gelu","layer_norm_eps":1e-12}`, false, 11},
	{"vit", `{"architectures":["ViTForImageClassification"],"hidden_size":16,"num_hidden_layers":2,
		"num_attention_heads":2,"intermediate_size":20,"image_size":8,"patch_size":4,"num_channels":3,
		"hidden_act":"gelu","layer_norm_eps":1e-12,"id2label":{"0":"a","1":"b","2":"c"}}`, false, 0},
}

// randomModel builds a model from a config with random parameters: norm
// scales near 1, biases and embeddings of unit-order size and matrices with
// rows of norm about 1.
func randomModel(t *testing.T, cfgJSON string, untied bool, seed uint64) *Model {
	t.Helper()
	cfg, err := formats.ParseConfig([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := BuildSpec(cfg, func(n string) bool { return untied && n == "lm_head.weight" })
	if err != nil {
		t.Fatal(err)
	}
	infos, err := spec.Parameters()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	w := MapWeights{}
	for _, pi := range infos {
		n := prod(pi.Shape)
		data := make([]float32, n)
		last := pi.Shape[len(pi.Shape)-1]
		isNorm := len(pi.Shape) == 1 && strings.HasSuffix(pi.Name, ".weight")
		for i := range data {
			switch {
			case isNorm:
				data[i] = float32(1 + 0.2*rng.NormFloat64())
			case len(pi.Shape) == 1 || strings.Contains(pi.Name, "embed") || strings.Contains(pi.Name, "wte") ||
				strings.Contains(pi.Name, "wpe") || strings.Contains(pi.Name, "cls_token"):
				data[i] = float32(0.5 * rng.NormFloat64())
			default:
				data[i] = float32(rng.NormFloat64() / math.Sqrt(float64(last)))
			}
		}
		w[pi.Name] = &Param{Name: pi.Name, Shape: pi.Shape, Data: data}
	}
	m, err := Load(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomInput returns a batch of 2 for m.
func randomInput(m *Model, T int, rng *rand.Rand) *Input {
	n := &m.net
	if p := n.patch; p != nil {
		return &Input{Batch: 2, Pixels: randSlice(rng, 2*p.ch*p.h*p.w_, 1)}
	}
	in := &Input{Batch: 2, Seq: T, IDs: make([]int, 2*T)}
	for i := range in.IDs {
		in.IDs[i] = rng.IntN(n.vocab)
	}
	if n.types != nil {
		in.TokenTypes = make([]int, 2*T)
		for i := range in.TokenTypes {
			in.TokenTypes[i] = rng.IntN(n.numTypes)
		}
	}
	return in
}

// probeLoss is L = Σ_k <output_k, R_k> over the outputs a model has (logits,
// last hidden state, pooler) and hidden states 0, 1 and the last one.
type probeLoss struct {
	grad OutputGrad
}

func newProbeLoss(out *Output, layers int, rng *rand.Rand) *probeLoss {
	pl := &probeLoss{grad: OutputGrad{Hidden: map[int][]float32{}}}
	if out.Logits != nil {
		pl.grad.Logits = randSlice(rng, len(out.Logits), 1)
	}
	if out.LastHidden != nil {
		pl.grad.LastHidden = randSlice(rng, len(out.LastHidden), 1)
	}
	if out.Pooler != nil {
		pl.grad.Pooler = randSlice(rng, len(out.Pooler), 1)
	}
	for _, i := range []int{0, 1, layers} {
		pl.grad.Hidden[i] = randSlice(rng, len(out.HiddenStates[i]), 1)
	}
	return pl
}

func (pl *probeLoss) value(out *Output) float64 {
	s := dot64(to64(out.Logits), to64(pl.grad.Logits))
	s += dot64(to64(out.LastHidden), to64(pl.grad.LastHidden))
	s += dot64(to64(out.Pooler), to64(pl.grad.Pooler))
	for i, r := range pl.grad.Hidden {
		s += dot64(to64(out.HiddenStates[i]), to64(r))
	}
	return s
}

// The whole-model checks difference the float32 forward itself, with
// Richardson extrapolation, D = (4·D(ε) − D(2ε))/3 where D(ε) is the central
// difference, so that the truncation error is O(ε⁴) (random tiny models are
// strongly non-linear: plain central differences at ε = 1e-3 are off by
// 1e-3 relative). What remains is float32 rounding of the loss, about u·S
// with u ≈ 6e-8 and S = Σ|R⊙output| the absolute mass of the probe loss,
// amplified by 1/ε; the checks allow noiseFactor·S/ε for it (about twice
// the rounding bound). On top of that:
//   - directional derivatives along random directions over all parameters
//     (step dirStep) must agree to dirTol relative;
//   - single coordinates (step coordStep) must agree to coordTol relative to
//     |g_i| + 0.1·max|g| of their tensor (this also covers key biases, whose
//     gradient is exactly zero because softmax ignores a per-row constant).
//
// A missing or wrong term is of order 1 relative.
const (
	noiseFactor = 1.2e-7
	dirStep     = 2e-3
	dirTol      = 1e-4
	coordStep   = 1e-2
	coordTol    = 1e-3
)

// richardson returns the extrapolated derivative of f at 0 along its
// argument with step eps.
func richardson(eps float64, f func(s float64) float64) float64 {
	d1 := (f(eps) - f(-eps)) / (2 * eps)
	d2 := (f(2*eps) - f(-2*eps)) / (4 * eps)
	return (4*d1 - d2) / 3
}

// mass returns Σ|R⊙output| of the probe loss.
func (pl *probeLoss) mass(out *Output) float64 {
	abs := func(a, b []float32) float64 {
		var s float64
		for i := range b {
			s += math.Abs(float64(a[i]) * float64(b[i]))
		}
		return s
	}
	s := abs(out.Logits, pl.grad.Logits) + abs(out.LastHidden, pl.grad.LastHidden) + abs(out.Pooler, pl.grad.Pooler)
	for i, r := range pl.grad.Hidden {
		s += abs(out.HiddenStates[i], r)
	}
	return s
}

func TestModelGradients(t *testing.T) {
	for ci, tc := range tinyConfigs {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.json, tc.untied, uint64(ci+1))
			rng := rand.New(rand.NewPCG(uint64(ci+1), 7))
			in := randomInput(m, tc.T, rng)
			tr := m.NewTrainer()
			out, err := tr.Forward(in, Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			// The training forward must equal the inference forward.
			ref, err := m.Forward(in, Options{Hidden: true})
			if err != nil {
				t.Fatal(err)
			}
			pl := newProbeLoss(out, m.NumLayers(), rng)
			// The training forward must agree with the inference forward
			// (same arithmetic on differently managed buffers).
			if a, b := pl.value(out), pl.value(ref); math.Abs(a-b) > 1e-6*pl.mass(ref) {
				t.Fatalf("training forward gives L = %.12g, inference forward %.12g", a, b)
			}
			S := pl.mass(ref)
			grads, err := tr.Backward(&pl.grad)
			if err != nil {
				t.Fatal(err)
			}
			if len(grads) != len(m.Params) {
				t.Fatalf("%d gradients for %d parameters", len(grads), len(m.Params))
			}
			loss := func() float64 {
				o, err := m.Forward(in, Options{Hidden: true})
				if err != nil {
					t.Fatal(err)
				}
				return pl.value(o)
			}
			names := make([]string, 0, len(m.Params))
			for name := range m.Params {
				names = append(names, name)
			}
			sort.Strings(names)

			// Directional derivative along random directions over all
			// parameters at once.
			for range 2 {
				dir := map[string][]float32{}
				var want float64
				for _, name := range names {
					d := randSlice(rng, len(m.Params[name].Data), 1)
					dir[name] = d
					want += dot64(to64(d), to64(grads[name].Data))
				}
				orig := map[string][]float32{}
				for _, name := range names {
					orig[name] = append([]float32(nil), m.Params[name].Data...)
				}
				got := richardson(dirStep, func(s float64) float64 {
					for _, name := range names {
						p := m.Params[name].Data
						for i, v := range dir[name] {
							p[i] = orig[name][i] + float32(s)*v
						}
					}
					l := loss()
					for _, name := range names {
						copy(m.Params[name].Data, orig[name])
					}
					return l
				})
				allowed := dirTol*math.Abs(want) + noiseFactor*S/dirStep
				t.Logf("directional derivative: analytic %.8g, numeric %.8g (error/allowed %.2f)", want, got, math.Abs(got-want)/allowed)
				if math.Abs(got-want) > allowed {
					t.Errorf("directional derivative: analytic %.8g, numeric %.8g, allowed error %.2g", want, got, allowed)
				}
			}

			// Single coordinates of every parameter tensor.
			worst := 0.0
			for _, name := range names {
				p, g := m.Params[name].Data, grads[name].Data
				var scale float64
				for _, v := range g {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for range 2 {
					i := rng.IntN(len(p))
					old := p[i]
					num := richardson(coordStep, func(s float64) float64 {
						p[i] = old + float32(s)
						l := loss()
						p[i] = old
						return l
					})
					ana := float64(g[i])
					allowed := coordTol*(math.Abs(ana)+0.1*scale) + noiseFactor*S/coordStep
					e := math.Abs(num-ana) / allowed
					worst = math.Max(worst, e)
					if e > 1 {
						t.Errorf("%s[%d]: analytic %.6g, numeric %.6g, allowed error %.2g (max |g| %.3g)", name, i, ana, num, allowed, scale)
					}
				}
			}
			t.Logf("worst coordinate error/allowed %.2f over %d tensors (S = %.3g)", worst, len(names), S)
		})
	}
}
