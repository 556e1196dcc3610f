package convert

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

func TestLowerHull(t *testing.T) {
	o := func(bits int64, loss float64) BitOption { return BitOption{Bits: bits, Loss: loss} }
	for _, tc := range []struct {
		name string
		in   []BitOption
		want []BitOption
	}{
		{"one", []BitOption{o(10, 1)}, []BitOption{o(10, 1)}},
		{"dominated dropped", []BitOption{o(10, 1), o(20, 2), o(30, 0.5)}, []BitOption{o(10, 1), o(30, 0.5)}},
		{"above the chord dropped", []BitOption{o(10, 1), o(20, 0.9), o(30, 0)}, []BitOption{o(10, 1), o(30, 0)}},
		{"convex kept", []BitOption{o(30, 0.1), o(10, 1), o(20, 0.3)}, []BitOption{o(10, 1), o(20, 0.3), o(30, 0.1)}},
		{"equal bits, the smaller loss", []BitOption{o(10, 1), o(10, 0.5)}, []BitOption{o(10, 0.5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lowerHull(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("hull %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].Bits != tc.want[i].Bits || got[i].Loss != tc.want[i].Loss {
					t.Fatalf("hull %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestTensorOptionsLoss checks a dense option's loss against the
// definition tr(E·G·Eᵀ)/tr(W·G·Wᵀ) on an odd shape, with and without a
// Gram matrix.
func TestTensorOptionsLoss(t *testing.T) {
	const rows, cols = 7, 45
	// tol: the loss sums in float64 from float32 weights and the whitener
	// factorises G + λ·I with λ = svd.DefaultDamping·mean(diag G).
	const tol = 1e-6
	rng := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	x := mat.NewDense(50, cols, nil)
	for i := range 50 {
		for j := range cols {
			x.Set(i, j, rng.NormFloat64()*float64(1+j%5))
		}
	}
	var g mat.SymDense
	g.SymOuterK(1, x.T())
	wh, err := svd.NewWhitener(&g, svd.DefaultDamping)
	if err != nil {
		t.Fatal(err)
	}
	// gd is the damped Gram matrix the whitener factorises.
	gd := mat.NewSymDense(cols, nil)
	var tr float64
	for i := range cols {
		tr += g.At(i, i)
	}
	for i := range cols {
		for j := i; j < cols; j++ {
			v := g.At(i, j)
			if i == j {
				v += svd.DefaultDamping * tr / cols
			}
			gd.SetSym(i, j, v)
		}
	}
	quad := func(a []float64, gram mat.Symmetric) float64 {
		m := mat.NewDense(rows, cols, a)
		var s float64
		for i := range rows {
			r := m.RowView(i)
			s += mat.Inner(r, gram, r)
		}
		return s
	}
	for _, whitened := range []bool{false, true} {
		var whr *svd.Whitener
		gram := mat.Symmetric(eye(cols))
		if whitened {
			whr, gram = wh, gd
		}
		opts, err := tensorOptions(w, rows, cols, whr, true)
		if err != nil {
			t.Fatal(err)
		}
		w64, e := make([]float64, len(w)), make([]float64, len(w))
		for i, v := range w {
			w64[i] = float64(v)
		}
		total := quad(w64, gram)
		fq := make([]float32, len(w))
		for _, o := range opts {
			if o.Rank != 0 {
				if o.Loss < 0 || o.Loss > 1+tol {
					t.Errorf("%v: loss %g outside [0, 1]", o, o.Loss)
				}
				continue
			}
			quant.FakeQuant(fq, w, rows, cols, o.Scheme)
			for i := range e {
				e[i] = w64[i] - float64(fq[i])
			}
			want := quad(e, gram) / total
			if math.Abs(o.Loss-want) > tol*want {
				t.Errorf("whitened %v, %v: loss %g, want %g", whitened, o, o.Loss, want)
			}
			if o.Bits != o.Scheme.StorageBits(rows, cols) {
				t.Errorf("%v: %d bits, want %d", o, o.Bits, o.Scheme.StorageBits(rows, cols))
			}
		}
	}
}

func eye(n int) *mat.SymDense {
	m := mat.NewSymDense(n, nil)
	for i := range n {
		m.SetSym(i, i, 1)
	}
	return m
}

// TestBitPlanMeetsTheTarget plans the tiny Llama at several bit targets,
// writes each plan and checks that the file stores what the plan counted,
// within the target, that a larger target loses no more, and that the plan
// is no worse, by its own estimate, than rounding every tensor to the
// uniform scheme of the same size.
func TestBitPlanMeetsTheTarget(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	bp, err := NewBitPlanner(ctx, dir, Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	prevLoss := math.Inf(1)
	for _, target := range []float64{2.75, 3.5, 4.6, 8.5} {
		plan, err := bp.Plan(target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan.BitsPerWeight() > target {
			t.Errorf("target %v: plan stores %.4f bits per weight", target, plan.BitsPerWeight())
		}
		if plan.Loss > prevLoss {
			t.Errorf("target %v: loss %g above the smaller target's %g", target, plan.Loss, prevLoss)
		}
		prevLoss = plan.Loss
		opt := Options{Base: vlora.BaseZero, Ranks: plan.Ranks(), KeepModel: true}
		res, err := Compress(ctx, dir, filepath.Join(t.TempDir(), "v"), opt)
		if err != nil {
			t.Fatal(err)
		}
		qp := plan.Quant()
		res.Model.Manifest.Quant = &qp
		if err := res.Model.Save(res.Path); err != nil {
			t.Fatal(err)
		}
		mf, f, err := vlora.ReadManifest(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := mf.BitsPerOriginalWeight()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-plan.BitsPerWeight()) > 1e-12 || mf.FormatVersion != 3 {
			t.Errorf("target %v: file %.6f bits per weight (version %d), plan %.6f", target, got, mf.FormatVersion, plan.BitsPerWeight())
		}
	}
	// Uniform int4/g32 is one of the plans the planner could choose.
	uniform := quant.Scheme{Bits: 4, GroupSize: 32, Full: true}
	bits, loss := float64(bp.fixed), 0.0
	for _, tn := range bp.tensors {
		for _, o := range allOptions(t, dir, tn.name) {
			if o.Rank == 0 && o.Scheme == uniform {
				bits += float64(o.Bits)
				loss += o.Loss
			}
		}
	}
	plan, err := bp.Plan(bits/float64(bp.original), nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Loss > loss {
		t.Errorf("plan at %.4f bits loses %g, uniform %s %g", plan.BitsPerWeight(), plan.Loss, uniform, loss)
	}
	if _, err := bp.Plan(0.5, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("target 0.5: %v", err)
	}
	// A planner whose one tensor stores at least 100 bits for 10 weights.
	one := &BitPlanner{tensors: []bitTensor{{name: "w", hull: []BitOption{{Bits: 100, Loss: 1}, {Bits: 200, Loss: 0.5}}}}, fixed: 20, original: 10}
	if _, err := one.Plan(11.9, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("target 11.9, below the menu's 12: %v", err)
	}
	if p, err := one.Plan(12, nil); err != nil || p.Bits != 120 || p.Loss != 1 {
		t.Errorf("target 12: %+v, %v; want 120 bits, loss 1", p, err)
	}
	if p, err := one.Plan(25, map[string]float64{"w": 3}); err != nil || p.Bits != 220 || p.Loss != 1.5 {
		t.Errorf("target 25, weight 3: %+v, %v; want 220 bits, loss 1.5", p, err)
	}
	if _, err := bp.Plan(4, map[string]float64{bp.tensors[0].name: -1}); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("negative weight: %v", err)
	}
}

// allOptions returns every option of the named tensor of the checkpoint in
// dir (not only its hull).
func allOptions(t *testing.T, dir, name string) []BitOption {
	t.Helper()
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	ti, _ := ck.Info(name)
	w, err := ck.ReadFloat32(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, cols := vlora.Matrix(ti.Shape)
	opts, err := tensorOptions(w, rows, cols, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}
