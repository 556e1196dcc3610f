package distill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// tinySetup compresses the tiny GQA Llama fixture (K=2, r=3) and returns
// the teacher, the student file path and random training data.
func tinySetup(t *testing.T, base vlora.BaseMode) (*model.Model, string, *dataset.Dataset) {
	t.Helper()
	dir := testenv.Testdata(t, "golden/llama-gqa-untied")
	out := t.TempDir()
	opt := convert.Options{}
	opt.CompoundSize, opt.Rank, opt.Base = 2, 3, base
	res, err := convert.Compress(context.Background(), dir, out, opt)
	if err != nil {
		t.Fatal(err)
	}
	teacher, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := dataset.Random(teacher.Config, 12, 10, 3)
	return teacher, res.Path, data
}

// TestChainMatchesFiniteDifferences checks the gradient of the KL loss with
// respect to stored VLoRA tensors (bases, lora_A, lora_B, deltas,
// pass-through) against central differences. The loss is computed in
// float32, so the step is 1e-2·max(1,|x|) and the tolerance 3e-2 relative
// (plus 1e-4 absolute): float32 rounding of a loss of order 1 is ~1e-7, so
// differences over 2e-2 carry ~1e-5 error; the rest is curvature.
func TestChainMatchesFiniteDifferences(t *testing.T) {
	for _, base := range []vlora.BaseMode{vlora.BaseFirst, vlora.BaseMean, vlora.BaseZero} {
		t.Run(string(base), func(t *testing.T) {
			teacher, path, data := tinySetup(t, base)
			vm, err := vlora.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := model.FromVLoRA(vm)
			if err != nil {
				t.Fatal(err)
			}
			st, err := newStudent(loaded, TrainAll, LRScales{})
			if err != nil {
				t.Fatal(err)
			}
			idx := []int{0, 5, 7}
			in := data.Gather(idx)
			to, _ := teacher.Net.Forward(in, transformer.Options{})
			vocab := to.LogitsShape[2]
			transformer.LogSoftmax(to.Logits, to.Logits, vocab)
			loss := func() float64 {
				st.materialize()
				o, err := loaded.Net.Forward(in, transformer.Options{})
				if err != nil {
					t.Fatal(err)
				}
				l, _ := transformer.KLDiv(to.Logits, o.Logits, vocab, 1, nil)
				return l
			}
			st.materialize()
			tr := loaded.Net.NewTrainer()
			o, _ := tr.Forward(in, transformer.Options{})
			g := make([]float32, len(o.Logits))
			transformer.KLDiv(to.Logits, o.Logits, vocab, 1, g)
			grads, err := tr.Backward(&transformer.OutputGrad{Logits: g})
			if err != nil {
				t.Fatal(err)
			}
			st.chain(grads)
			checked := map[string]bool{}
			for _, p := range st.params {
				kind := p.name
				for _, k := range []string{"norm", "embed", "lm_head", "base", "delta", "lora_A", "lora_B"} {
					if strings.Contains(p.name, k) {
						kind = k
					}
				}
				if checked[kind] {
					continue
				}
				checked[kind] = true
				for _, i := range []int{0, len(p.data) / 2, len(p.data) - 1} {
					x := p.data[i]
					h := float32(1e-2 * math.Max(1, math.Abs(float64(x))))
					p.data[i] = x + h
					lp := loss()
					p.data[i] = x - h
					lm := loss()
					p.data[i] = x
					num := (lp - lm) / float64(2*h)
					got := float64(p.grad[i])
					if math.Abs(num-got) > 3e-2*math.Abs(num)+1e-4 {
						t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", p.name, i, got, num)
					}
				}
			}
			for _, k := range []string{"lora_A", "lora_B", "base", "delta", "embed", "lm_head"} {
				if k == "base" && base == vlora.BaseZero {
					continue // a zero base stores none
				}
				if !checked[k] {
					t.Errorf("no %s tensor checked", k)
				}
			}
		})
	}
}

// run distills a fresh copy of the student for steps and returns it.
func run(t *testing.T, teacher *model.Model, path string, data *dataset.Dataset, opt Options) (*vlora.Model, *Result) {
	t.Helper()
	vm, err := vlora.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), teacher, vm, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	return vm, res
}

// TestLossDecreasesAndIsDeterministic trains the tiny model and checks that
// the loss falls and that the same seed reproduces the run bit for bit.
func TestLossDecreasesAndIsDeterministic(t *testing.T) {
	teacher, path, data := tinySetup(t, vlora.BaseMean)
	opt := Options{Steps: 30, Batch: 4, LR: 1e-3, Warmup: 3, Seed: 9, ClipNorm: 1}
	vm1, r1 := run(t, teacher, path, data, opt)
	vm2, r2 := run(t, teacher, path, data, opt)
	first, last := r1.Log[0].Loss, r1.FinalLoss
	if !(last < 0.7*first) {
		t.Errorf("loss %.4f → %.4f: did not fall by 30%%", first, last)
	}
	if r1.FinalLoss != r2.FinalLoss {
		t.Errorf("same seed, different final loss: %v vs %v", r1.FinalLoss, r2.FinalLoss)
	}
	for n, a := range vm1.Tensors {
		b := vm2.Tensors[n]
		for i := range a.Data {
			if a.Data[i] != b.Data[i] {
				t.Fatalf("same seed, %s differs at %d", n, i)
			}
		}
	}
	opt.Seed = 10
	_, r3 := run(t, teacher, path, data, opt)
	if r3.FinalLoss == r1.FinalLoss {
		t.Errorf("different seeds gave the same loss %v", r1.FinalLoss)
	}
}

// TestStreamedStudentMatchesResident checks that distilling a streamed
// student (each layer built from its bases and factors while it runs, in
// the forward and the backward pass) with recomputed activations and a
// streamed teacher gives exactly the resident run's tensors, for every
// trainable set.
func TestStreamedStudentMatchesResident(t *testing.T) {
	teacher, path, data := tinySetup(t, vlora.BaseMean)
	streamedTeacher, err := model.LoadDenseAs(teacher.Path, model.Streamed)
	if err != nil {
		t.Fatal(err)
	}
	defer streamedTeacher.Close()
	for _, set := range []TrainSet{TrainFactors, TrainBases, TrainAll} {
		t.Run(string(set), func(t *testing.T) {
			opt := Options{Steps: 4, Batch: 3, LR: 1e-3, Seed: 2, ClipNorm: 1, HiddenWeight: 1, Train: set}
			want, wr := run(t, teacher, path, data, opt)
			opt.Residency, opt.Recompute = model.Streamed, true
			got, gr := run(t, streamedTeacher, path, data, opt)
			if !gr.Student.Net.Streamed() {
				t.Fatal("the student is not streamed")
			}
			if gr.FinalLoss != wr.FinalLoss {
				t.Errorf("final loss %v, resident %v", gr.FinalLoss, wr.FinalLoss)
			}
			for n, a := range want.Tensors {
				if !slices.Equal(got.Tensors[n].Data, a.Data) {
					t.Errorf("%s differs from the resident run", n)
				}
			}
		})
	}
}

// TestResumeMatchesStraightRun checks that stopping at a checkpoint and
// resuming gives exactly the straight run's result, in float and under a
// quantization plan (whose checkpoints keep the float master weights).
func TestResumeMatchesStraightRun(t *testing.T) {
	for _, c := range []struct {
		name string
		plan vlora.QuantPlan
	}{{"float", vlora.QuantPlan{}}, {"quantized", testPlan}} {
		t.Run(c.name, func(t *testing.T) {
			teacher, path, data := tinySetup(t, vlora.BaseFirst)
			opt := Options{Steps: 8, Batch: 3, LR: 3e-3, Warmup: 2, Seed: 1, Train: TrainAll, Quant: c.plan}
			straight, _ := run(t, teacher, path, data, opt)

			ckpt := filepath.Join(t.TempDir(), "ckpt.safetensors")
			half := opt
			half.CheckpointEvery, half.CheckpointPath = 4, ckpt
			ctx, cancel := context.WithCancel(context.Background())
			half.Progress = func(p stage.Progress) {
				if p.Done == 5 {
					cancel() // interrupted after the checkpoint at step 4
				}
			}
			vm, err := vlora.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(ctx, teacher, vm, data, half); err == nil {
				t.Fatal("cancelled run returned no error")
			}
			resumed := opt
			resumed.CheckpointPath, resumed.Resume = ckpt, true
			vm2, res := run(t, teacher, path, data, resumed)
			if len(res.Log) != 8 || res.Log[3].Step != 4 {
				t.Errorf("resumed log has %d entries", len(res.Log))
			}
			for n, a := range straight.Tensors {
				b := vm2.Tensors[n]
				for i := range a.Data {
					if a.Data[i] != b.Data[i] {
						t.Fatalf("resumed run differs from straight run in %s[%d]: %v vs %v", n, i, b.Data[i], a.Data[i])
					}
				}
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	// Exact values of the documented formulas with a floor of 0.1; the
	// tolerance is a few float64 ulps of a cosine.
	cases := []struct {
		s, steps, warm int
		decay          Decay
		want           float64
	}{
		{0, 100, 20, DecayCosine, 1.0 / 20},
		{19, 100, 20, DecayCosine, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*19/100))},
		{50, 100, 0, DecayCosine, 0.55},
		{100, 100, 0, DecayCosine, 0.1},
		{0, 100, 20, DecayLinear, 1.0 / 20},
		{19, 100, 20, DecayLinear, 0.1 + 0.9*0.81},
		{25, 100, 0, DecayLinear, 0.1 + 0.9*0.75},
		{50, 100, 0, DecayLinear, 0.55},
		{100, 100, 0, DecayLinear, 0.1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v step %d of %d, warm-up %d", c.decay, c.s, c.steps, c.warm), func(t *testing.T) {
			t.Parallel()
			if got := schedule(c.s, c.steps, c.warm, 0.1, c.decay); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("schedule(%d,%d,%d) = %v, want %v", c.s, c.steps, c.warm, got, c.want)
			}
		})
	}
}

func TestParseDecay(t *testing.T) {
	for _, d := range []Decay{DecayCosine, DecayLinear} {
		if got, err := ParseDecay(d.String()); err != nil || got != d {
			t.Errorf("ParseDecay(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	for _, bad := range []string{"", "Cosine", "step", "wsd"} {
		if _, err := ParseDecay(bad); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("ParseDecay(%q) error %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := (Options{Decay: Decay(7)}).resolve(); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("Options{Decay: 7} resolved with error %v, want ErrInvalid", err)
	}
}

func TestAdamWFirstStep(t *testing.T) {
	// With bias correction the first step moves each weight by lr·sign(g).
	p := &param{data: []float32{1, -2, 3}, grad: []float32{0.5, -4, 1e-3}, m: make([]float32, 3), v: make([]float32, 3)}
	o := &adamW{beta1: 0.9, beta2: 0.999, eps: 1e-12}
	o.update([]*param{p}, 0.1)
	want := []float32{0.9, -1.9, 2.9}
	for i := range want {
		if math.Abs(float64(p.data[i]-want[i])) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, p.data[i], want[i])
		}
	}
	// A learning-rate scale of 0.5 halves the first step.
	ps := &param{data: []float32{1}, grad: []float32{2}, m: make([]float32, 1), v: make([]float32, 1), lrScale: 0.5}
	(&adamW{beta1: 0.9, beta2: 0.999, eps: 1e-12}).update([]*param{ps}, 0.1)
	if math.Abs(float64(ps.data[0])-0.95) > 1e-6 {
		t.Errorf("scaled step: w = %v, want 0.95", ps.data[0])
	}
	q := &param{grad: []float32{3, 4}}
	if n := clipGradNorm([]*param{q}, 1); n != 5 || math.Abs(float64(q.grad[0])-0.6) > 1e-7 {
		t.Errorf("clip: norm %v, grad %v", n, q.grad)
	}
}
