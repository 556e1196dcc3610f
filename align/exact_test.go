package align_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// logitTol bounds ‖Δlogits‖/‖logits‖ between a model and its aligned copy.
// The permutations are exact; each rotation rounds every transformed weight
// to float32 once (relative error about 6e-8), and the forward pass then
// sums in another order: about 1e-6 relative in all. A wrong transform (a
// head moved without its o_proj columns, a reflection on a rotary plane)
// gives errors of order one.
const logitTol = 1e-5

// fixture is an opened golden checkpoint with its layer stack.
type fixture struct {
	ck *formats.Checkpoint
	st *vlora.Stack
}

func openFixture(t *testing.T, name string) fixture {
	t.Helper()
	ck, err := formats.OpenCheckpoint(filepath.Join("..", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{ck, st}
}

// logits runs the fixture's model, with every stack tensor transformed by a
// when a is not nil, on fixed random tokens.
func (f fixture) logits(t *testing.T, a *align.Alignment) []float32 {
	t.Helper()
	m, err := transformer.Load(f.ck.Config, transformer.CheckpointWeights{Checkpoint: f.ck})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range m.Params {
		if err := align.Apply(a, name, p.Data); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	in := &transformer.Input{Batch: 2, Seq: 24, IDs: make([]int, 48)}
	for i := range in.IDs {
		in.IDs[i] = rng.IntN(f.ck.Config.VocabSize)
	}
	out, err := m.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return out.Logits
}

func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / n)
}

// randomTransform returns a transform of the layout with the parts named
// in parts set at random.
func randomTransform(lay *align.Layout, rng *rand.Rand, parts map[string]bool) *align.Transform {
	t := &align.Transform{}
	g := lay.Heads / lay.KVHeads
	if parts["neurons"] {
		t.Neurons = rng.Perm(lay.Intermediate)
	}
	if parts["groups"] || parts["heads"] {
		kv := identity(lay.KVHeads)
		if parts["groups"] {
			kv = rng.Perm(lay.KVHeads)
		}
		t.KVHeads, t.Heads = kv, make([]int, lay.Heads)
		for b, a := range kv {
			within := identity(g)
			if parts["heads"] {
				within = rng.Perm(g)
			}
			for y, x := range within {
				t.Heads[b*g+y] = a*g + x
			}
		}
	}
	if parts["vo"] {
		for range lay.KVHeads {
			t.VO = append(t.VO, randomOrthogonal(rng, lay.HeadDim))
		}
	}
	if parts["planes"] {
		for range lay.KVHeads {
			var cs []float64
			for range lay.HeadDim / 2 {
				th := rng.Float64() * 2 * math.Pi
				cs = append(cs, math.Cos(th), math.Sin(th))
			}
			t.Planes = append(t.Planes, cs)
		}
	}
	return t
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// randomOrthogonal returns a random n×n orthogonal matrix (Gram–Schmidt of
// Gaussian rows), row-major.
func randomOrthogonal(rng *rand.Rand, n int) []float64 {
	q := make([]float64, n*n)
	for i := range n {
		row := q[i*n : (i+1)*n]
		for {
			for j := range row {
				row[j] = rng.NormFloat64()
			}
			for k := range i {
				prev := q[k*n : (k+1)*n]
				var d float64
				for j := range row {
					d += row[j] * prev[j]
				}
				for j := range row {
					row[j] -= d * prev[j]
				}
			}
			var s float64
			for _, v := range row {
				s += v * v
			}
			if s > 1e-6 {
				for j := range row {
					row[j] /= math.Sqrt(s)
				}
				break
			}
		}
	}
	return q
}

// TestEachTransformExact applies each part of a transform alone, at random,
// to every layer of the Llama and Qwen2 fixtures (the latter with q/k/v
// biases) and compares the logits.
func TestEachTransformExact(t *testing.T) {
	cases := []struct {
		name  string
		parts []string
	}{
		{"MLP neurons", []string{"neurons"}},
		{"key/value groups", []string{"groups"}},
		{"query heads within groups", []string{"heads"}},
		{"value/output rotation", []string{"vo"}},
		{"rotary planes", []string{"planes"}},
		{"all together", []string{"neurons", "groups", "heads", "vo", "planes"}},
	}
	for _, fx := range []string{"llama-gqa-untied", "qwen2-bias-tied"} {
		f := openFixture(t, fx)
		lay, err := align.NewLayout(f.ck.Config, f.st)
		if err != nil {
			t.Fatal(err)
		}
		want := f.logits(t, nil)
		for _, tc := range cases {
			t.Run(fx+"/"+tc.name, func(t *testing.T) {
				parts := map[string]bool{}
				for _, p := range tc.parts {
					parts[p] = true
				}
				rng := rand.New(rand.NewPCG(1, 2))
				a := &align.Alignment{Stack: f.st, Layout: lay}
				for range f.st.NumLayers {
					a.Layers = append(a.Layers, randomTransform(lay, rng, parts))
				}
				e := relErr(f.logits(t, a), want)
				t.Logf("logits rel err %.2e", e)
				if e > logitTol {
					t.Fatalf("logits rel err %.2e > %.0e", e, logitTol)
				}
			})
		}
	}
}

// TestComputedAlignmentExact aligns the fixtures' layers (one compound) and
// compares the logits; the alignment must move something for the check to
// mean anything.
func TestComputedAlignmentExact(t *testing.T) {
	for _, fx := range []string{"llama-gqa-untied", "qwen2-bias-tied"} {
		for _, ref := range []align.Reference{align.Mean, align.First} {
			t.Run(fx+"/"+string(ref), func(t *testing.T) {
				f := openFixture(t, fx)
				a, err := align.Compute(context.Background(), f.ck.ReadFloat32, f.ck.Config, f.st,
					vlora.Compounds(f.st.NumLayers, f.st.NumLayers), align.Options{Reference: ref})
				if err != nil {
					t.Fatal(err)
				}
				moved := false
				for _, tr := range a.Layers[1:] {
					for i, p := range tr.Neurons {
						moved = moved || p != i
					}
				}
				if !moved {
					t.Fatal("no neuron moved")
				}
				e := relErr(f.logits(t, a), f.logits(t, nil))
				t.Logf("logits rel err %.2e", e)
				if e > logitTol {
					t.Fatalf("logits rel err %.2e > %.0e", e, logitTol)
				}
			})
		}
	}
}

func TestUnsupported(t *testing.T) {
	for _, fx := range []string{"gpt2", "bert"} {
		t.Run(fx, func(t *testing.T) {
			f := openFixture(t, fx)
			_, err := align.NewLayout(f.ck.Config, f.st)
			if !errors.Is(err, align.ErrUnsupported) || !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %v, want ErrUnsupported and formats.ErrInvalid", err)
			}
		})
	}
}

// TestPartialTransformDetected checks that the comparison sees a transform
// applied to gate_proj alone: the neurons permuted without up/down_proj.
func TestPartialTransformDetected(t *testing.T) {
	f := openFixture(t, "llama-gqa-untied")
	lay, err := align.NewLayout(f.ck.Config, f.st)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	a := &align.Alignment{Stack: f.st, Layout: lay}
	for range f.st.NumLayers {
		a.Layers = append(a.Layers, randomTransform(lay, rng, map[string]bool{"neurons": true}))
	}
	m, err := transformer.Load(f.ck.Config, transformer.CheckpointWeights{Checkpoint: f.ck})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range m.Params {
		if _, s, ok := f.st.Split(name); ok && s == "mlp.gate_proj.weight" {
			if err := align.Apply(a, name, p.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	in := &transformer.Input{Batch: 1, Seq: 8, IDs: []int{1, 2, 3, 4, 5, 6, 7, 8}}
	got, err := m.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := transformer.Load(f.ck.Config, transformer.CheckpointWeights{Checkpoint: f.ck})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got.Logits, want.Logits); e < 1e-3 {
		t.Fatalf("logits rel err %.2e: a partial transform went unnoticed", e)
	}
}
