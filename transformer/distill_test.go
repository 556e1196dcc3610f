package transformer

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// distillStep is the finite-difference step of TestDistillGradientBytellama
// along directions of per-element size 0.05; distillNoise/ε allows for the
// float32 rounding of the mean KL (observed 1.6e-7/ε to 2.3e-7/ε absolute
// when scanning ε from 1e-3 to 3e-2, where the Richardson truncation error
// is still below it).
const (
	distillStep  = 5e-3
	distillNoise = 5e-7
)

// TestDistillGradientBytellama checks the whole distillation gradient on the
// real bytellama checkpoint: KL(teacher ‖ student) between the checkpoint and
// a perturbed copy, differentiated through KLDiv and Trainer.Backward, against
// Richardson-extrapolated central differences along random directions over
// every parameter.
func TestDistillGradientBytellama(t *testing.T) {
	dir := sharedDir(t, "models/bytellama")
	teacher, err := loadDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	student, err := loadDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	names := make([]string, 0, len(student.Params))
	for name := range student.Params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := student.Params[name].Data
		for i := range p {
			p[i] *= float32(1 + 0.1*rng.NormFloat64())
		}
	}
	const B, T = 2, 40
	in := &Input{Batch: B, Seq: T, IDs: make([]int, B*T)}
	for i := range in.IDs {
		in.IDs[i] = 32 + rng.IntN(90)
	}
	tout, err := teacher.Forward(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	V := tout.LogitsShape[2]
	loss := func() float64 {
		o, err := student.Forward(in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		kl, err := KLDiv(tout.Logits, o.Logits, V, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kl
	}
	tr := student.NewTrainer()
	sout, err := tr.Forward(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl := make([]float32, len(sout.Logits))
	kl0, err := KLDiv(tout.Logits, sout.Logits, V, 1, dl)
	if err != nil {
		t.Fatal(err)
	}
	if kl0 <= 0 {
		t.Fatalf("KL of the perturbed student %g, want > 0", kl0)
	}
	grads, err := tr.Backward(&OutputGrad{Logits: dl})
	if err != nil {
		t.Fatal(err)
	}
	orig := map[string][]float32{}
	for _, name := range names {
		orig[name] = append([]float32(nil), student.Params[name].Data...)
	}
	for range 2 {
		d := map[string][]float32{}
		var want float64
		for _, name := range names {
			d[name] = randSlice(rng, len(orig[name]), 0.05)
			want += dot64(to64(d[name]), to64(grads[name].Data))
		}
		f := func(s float64) float64 {
			for _, name := range names {
				p := student.Params[name].Data
				for i, v := range d[name] {
					p[i] = orig[name][i] + float32(s)*v
				}
			}
			l := loss()
			for _, name := range names {
				copy(student.Params[name].Data, orig[name])
			}
			return l
		}
		got := richardson(distillStep, f)
		t.Logf("KL %.4f: directional derivative analytic %.8g, numeric %.8g (rel %.1e)", kl0, want, got, math.Abs(got-want)/math.Abs(want))
		if math.Abs(got-want) > dirTol*math.Abs(want)+distillNoise/distillStep {
			t.Errorf("directional derivative: analytic %.8g, numeric %.8g", want, got)
		}
	}
}
