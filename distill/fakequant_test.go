package distill

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// testPlan quantizes every family, each with a different scheme.
var testPlan = vlora.QuantPlan{
	Bases:       quant.Scheme{Bits: 4, GroupSize: 16},
	Factors:     quant.Scheme{Bits: 3, GroupSize: 0},
	Passthrough: quant.Scheme{Bits: 8, GroupSize: 32},
}

// fq returns the fake quantization of t in scheme s.
func fq(t *vlora.Tensor, s quant.Scheme) []float32 {
	rows, cols := vlora.Matrix(t.Shape)
	out := make([]float32, len(t.Data))
	quant.FakeQuant(out, t.Data, rows, cols, s)
	return out
}

// TestFakeQuantForwardAndChain checks that under a quantization plan the
// student's dense weights are fq(base) + fq(B)·fq(A) (fq(pass) for
// pass-through tensors), and that the chained gradients are the
// straight-through ones: dBase = dW, dB = dW·fq(A)ᵀ, dA = fq(B)ᵀ·dW.
func TestFakeQuantForwardAndChain(t *testing.T) {
	_, path, data := tinySetup(t, vlora.BaseMean)
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
	if st.fq, err = newFakeQuant(st, testPlan); err != nil {
		t.Fatal(err)
	}
	st.materialize()
	// Float32 sums of a few products, compared with a differently ordered
	// sum: 1e-5 relative to the magnitude.
	const tol = 1e-5
	close := func(a, b float32) bool { return math.Abs(float64(a-b)) <= tol*(1+math.Abs(float64(b))) }
	var lowRank *binding
	for _, bd := range st.bindings {
		want := make([]float32, len(bd.dense.Data))
		if len(bd.base.Shape) >= 2 {
			copy(want, fq(bd.base, testPlan.Bases))
		} else {
			copy(want, bd.base.Data)
		}
		switch {
		case bd.a != nil && bd.rank > 0:
			lowRank = bd
			kernels.Sgemm(false, false, bd.rows, bd.cols, bd.rank, 1, fq(bd.b, testPlan.Factors), bd.rank, fq(bd.a, testPlan.Factors), bd.cols, 1, want, bd.cols)
		case bd.d != nil:
			for i, v := range bd.d.Data { // 1-D deltas stay float
				want[i] += v
			}
		}
		for i := range want {
			if !close(bd.dense.Data[i], want[i]) {
				t.Fatalf("%s[%d]: %g, want %g", bd.dense.Name, i, bd.dense.Data[i], want[i])
			}
		}
	}
	if lowRank == nil {
		t.Fatal("no low-rank binding")
	}
	for _, name := range st.pass {
		tp := loaded.Net.Params[name]
		if len(tp.Shape) < 2 {
			continue
		}
		want := fq(vm.Tensors[name], testPlan.Passthrough)
		for i := range want {
			if tp.Data[i] != want[i] {
				t.Fatalf("%s[%d]: %g, want %g", name, i, tp.Data[i], want[i])
			}
		}
	}

	tr := loaded.Net.NewTrainer()
	in := data.Gather([]int{1, 2})
	o, err := tr.Forward(in, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float32, len(o.Logits))
	for i := range g {
		g[i] = float32(math.Sin(float64(i)))
	}
	grads, err := tr.Backward(&transformer.OutputGrad{Logits: g})
	if err != nil {
		t.Fatal(err)
	}
	st.chain(grads)
	bd := lowRank
	dw := grads[bd.dense.Name].Data
	wantA := make([]float32, len(bd.a.Data))
	wantB := make([]float32, len(bd.b.Data))
	kernels.Sgemm(true, false, bd.rank, bd.cols, bd.rows, 1, fq(bd.b, testPlan.Factors), bd.rank, dw, bd.cols, 0, wantA, bd.cols)
	kernels.Sgemm(false, true, bd.rows, bd.rank, bd.cols, 1, dw, bd.cols, fq(bd.a, testPlan.Factors), bd.cols, 0, wantB, bd.rank)
	for i := range wantA {
		if !close(bd.aP.grad[i], wantA[i]) {
			t.Fatalf("dA[%d] = %g, want %g", i, bd.aP.grad[i], wantA[i])
		}
	}
	for i := range wantB {
		if !close(bd.bP.grad[i], wantB[i]) {
			t.Fatalf("dB[%d] = %g, want %g", i, bd.bP.grad[i], wantB[i])
		}
	}
}

// TestRunQuantized trains under a plan and checks that the loss falls, that
// the final tensors are their own quantization (the model saved is the
// model trained) and that the storage is accounted family by family.
func TestRunQuantized(t *testing.T) {
	teacher, path, data := tinySetup(t, vlora.BaseMean)
	opt := Options{Steps: 30, Batch: 4, LR: 1e-3, Warmup: 3, Seed: 9, ClipNorm: 1, Train: TrainAll, Quant: testPlan}
	vm, res := run(t, teacher, path, data, opt)
	if first, last := res.Log[0].Loss, res.FinalLoss; !(last < 0.8*first) {
		t.Errorf("loss %.4f → %.4f: did not fall by 20%%", first, last)
	}
	var wantBits int64
	quantized := 0
	for name, tn := range vm.Tensors {
		var s quant.Scheme
		switch {
		case len(tn.Shape) < 2:
		case strings.Contains(name, "base"):
			s = testPlan.Bases
		case strings.Contains(name, "lora_") || strings.Contains(name, "delta"):
			s = testPlan.Factors
		default:
			s = testPlan.Passthrough
		}
		if s.Bits == 0 {
			wantBits += 32 * int64(len(tn.Data))
			continue
		}
		quantized++
		rows, cols := vlora.Matrix(tn.Shape)
		wantBits += s.StorageBits(rows, cols)
		// Quantizing the committed values again is exact, except where a
		// group's scale is not an F16 value times its top code: allow
		// one part in 2^10 of the group's largest value.
		again := fq(tn, s)
		for i, v := range tn.Data {
			if d := math.Abs(float64(again[i] - v)); d > math.Abs(float64(v))/1024+1e-9 {
				t.Fatalf("%s[%d]: %g is not a fixed point (requantized %g)", name, i, v, again[i])
			}
		}
	}
	if quantized == 0 {
		t.Fatal("no quantized tensor")
	}
	if _, got, err := vm.Manifest.Storage(); err != nil || got != wantBits {
		t.Errorf("storage %d bits (%v), want %d", got, err, wantBits)
	}
	// Saved and loaded again, the file holds exactly the trained values.
	out := filepath.Join(t.TempDir(), vlora.FileName)
	if err := vm.Save(out); err != nil {
		t.Fatal(err)
	}
	back, err := vlora.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, tn := range vm.Tensors {
		if !slices.Equal(back.Tensors[name].Data, tn.Data) {
			t.Fatalf("%s changed through Save and Load", name)
		}
	}
}

func TestQuantPlanErrors(t *testing.T) {
	_, path, _ := tinySetup(t, vlora.BaseMean)
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
	if f, err := newFakeQuant(st, vlora.QuantPlan{}); f != nil || err != nil {
		t.Errorf("empty plan: %v, %v", f, err)
	}
	if _, err := newFakeQuant(st, vlora.QuantPlan{Factors: quant.Scheme{Bits: 9}}); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("9 bits: %v", err)
	}
}

// TestDefaultLR checks the learning rate taken by Options.LR = 0: the
// quantization-aware rate only without sharing and from 3 bits.
func TestDefaultLR(t *testing.T) {
	int4 := vlora.UniformPlan(quant.Scheme{Bits: 4, GroupSize: 32, Full: true})
	int2 := vlora.UniformPlan(quant.Scheme{Bits: 2, GroupSize: 32, Full: true})
	dense := &vlora.Model{Manifest: &vlora.Manifest{}}
	shared := &vlora.Model{Manifest: &vlora.Manifest{BaseMode: vlora.BaseFirst, Increments: []vlora.IncrementDesc{{Layer: 1, Suffix: "w", Kind: vlora.KindDense}}}}
	// A bit plan stores every layer tensor as its own increment, no base.
	// "a" holds 64 values, "b" 16: the rate follows where most values are.
	tensors := map[string]*vlora.Tensor{"a": {Data: make([]float32, 64), Shape: []int{8, 8}}, "b": {Data: make([]float32, 16), Shape: []int{4, 4}}}
	ownDense := &vlora.Model{Manifest: &vlora.Manifest{BaseMode: vlora.BaseZero, Increments: []vlora.IncrementDesc{{Layer: 1, Suffix: "w", Kind: vlora.KindDense}}}, Tensors: tensors}
	ownLowRank := &vlora.Model{Manifest: &vlora.Manifest{BaseMode: vlora.BaseZero, Increments: []vlora.IncrementDesc{{Layer: 1, Suffix: "w", Kind: vlora.KindLowRank, Rank: 3}}}}
	perTensor := func(a, b int) vlora.QuantPlan {
		return vlora.QuantPlan{Tensors: map[string]quant.Scheme{"a": {Bits: a, GroupSize: 32, Full: true}, "b": {Bits: b, GroupSize: 32, Full: true}}}
	}
	for _, c := range []struct {
		name string
		plan vlora.QuantPlan
		vm   *vlora.Model
		want float64
	}{
		{"float", vlora.QuantPlan{}, dense, DefaultLR},
		{"int4 dense", int4, dense, DefaultQATLR},
		{"int4 bases only", vlora.QuantPlan{Bases: int4.Bases}, dense, DefaultQATLR},
		{"int2 dense", int2, dense, DefaultLR},
		{"int4 shared", int4, shared, DefaultLR},
		{"per tensor 4 and 3 bits, dense, no base", perTensor(4, 3), ownDense, DefaultQATLR},
		{"per tensor, most values 4 bits, a few 2", perTensor(4, 2), ownDense, DefaultQATLR},
		{"per tensor, most values 2 bits", perTensor(2, 4), ownDense, DefaultLR},
		{"per tensor, low rank, no base", perTensor(4, 4), ownLowRank, DefaultLR},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := defaultLR(c.plan, c.vm); got != c.want {
				t.Errorf("default lr %g, want %g", got, c.want)
			}
		})
	}
}
