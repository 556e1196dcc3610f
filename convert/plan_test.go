package convert

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

func TestPlanBudgetKeepsTheTarget(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	prevLoss := -1.0
	for _, target := range []float64{0.9, 0.7, 0.5} {
		t.Run("", func(t *testing.T) {
			opt := Options{}
			opt.CompoundSize = 2
			plan, err := PlanBudget(ctx, dir, opt, target, []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero})
			if err != nil {
				t.Fatal(err)
			}
			if float64(plan.Stored) > target*float64(plan.Original) {
				t.Errorf("plan stores %d of %d, above %v", plan.Stored, plan.Original, target)
			}
			if prevLoss >= 0 && plan.Loss < prevLoss {
				t.Errorf("target %v loses %g, less than the larger target's %g", target, plan.Loss, prevLoss)
			}
			prevLoss = plan.Loss
			opt.SuffixBases, opt.Ranks = plan.SuffixBases, plan.Ranks
			res, err := Compress(ctx, dir, filepath.Join(t.TempDir(), "v"), opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Manifest.Counts.ParamsStored; got != plan.Stored {
				t.Errorf("file stores %d, plan %d", got, plan.Stored)
			}
			for _, inc := range res.Manifest.Increments {
				r, ok := plan.Ranks[res.Manifest.LayerPrefix+strconv.Itoa(inc.Layer)+"."+inc.Suffix]
				switch {
				case !ok:
					if inc.Kind != vlora.KindDense {
						t.Errorf("layer %d %s: %s increment outside the plan", inc.Layer, inc.Suffix, inc.Kind)
					}
				case r == DenseIncrement && inc.Kind != vlora.KindDense, r >= 0 && inc.Rank != r:
					t.Errorf("layer %d %s: stored %s rank %d, plan %d", inc.Layer, inc.Suffix, inc.Kind, inc.Rank, r)
				}
			}
		})
	}
	_, err := PlanBudget(ctx, dir, Options{}, 0.01, []vlora.BaseMode{vlora.BaseMean})
	if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), "ask for a target of at least") {
		t.Errorf("a target below the pass-through tensors: %v, want formats.ErrInvalid saying the smallest target", err)
	}
}

// TestWhitenedIncrementsLowerActivationError compresses with Gram matrices
// of random anisotropic inputs and checks that every low-rank increment's
// activation error is at most the plain SVD's.
func TestWhitenedIncrementsLowerActivationError(t *testing.T) {
	// slack covers float32 storage of the factors.
	const slack = 1e-4
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	opt := Options{}
	opt.CompoundSize, opt.Rank, opt.Base = 2, 2, vlora.BaseMean
	plain, err := Compress(ctx, dir, filepath.Join(t.TempDir(), "p"), opt)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := vlora.Load(plain.Path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	opt.Grams = map[string]*mat.SymDense{}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		if _, _, in := pm.SplitName(n); !in || len(ti.Shape) != 2 {
			continue
		}
		cols := ti.Shape[1]
		x := mat.NewDense(4*cols, cols, nil)
		for i := range 4 * cols {
			for j := range cols {
				x.Set(i, j, rng.NormFloat64()*float64(1+10*(j%3)))
			}
		}
		g := mat.NewSymDense(cols, nil)
		g.SymOuterK(1, x.T())
		opt.Grams[n] = g
	}
	if len(opt.Grams) == 0 {
		t.Fatal("no 2-D layer tensors")
	}
	wh, err := Compress(ctx, dir, filepath.Join(t.TempDir(), "w"), opt)
	if err != nil {
		t.Fatal(err)
	}
	wm, err := vlora.Load(wh.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range opt.Grams {
		want, _ := ck.ReadFloat64(name)
		l, s, _ := pm.SplitName(name)
		errOf := func(m *vlora.Model) float64 {
			w, shape, err := m.LayerWeight(l, s)
			if err != nil {
				t.Fatal(err)
			}
			d := mat.NewDense(shape[0], shape[1], nil)
			for i := range shape[0] {
				for j := range shape[1] {
					d.Set(i, j, want[i*shape[1]+j]-float64(w[i*shape[1]+j]))
				}
			}
			var dg mat.Dense
			dg.Mul(d, g)
			return mat.Trace(mulT(&dg, d))
		}
		if pe, we := errOf(pm), errOf(wm); we > pe*(1+slack) {
			t.Errorf("%s: whitened activation error %g above plain %g", name, we, pe)
		}
	}
}

// mulT returns a·bᵀ.
func mulT(a, b *mat.Dense) *mat.Dense {
	var out mat.Dense
	out.Mul(a, b.T())
	return &out
}

func TestPlanBudgetLossWeights(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	zero := []vlora.BaseMode{vlora.BaseZero}
	opt := Options{CompoundSize: 2}
	plain, err := PlanBudget(ctx, dir, opt, 0.6, zero)
	if err != nil {
		t.Fatal(err)
	}
	// A tensor whose loss weighs a thousand times more gets at least the
	// rank it had, and strictly more unless it was already dense.
	name := firstLowRank(plain)
	if name == "" {
		t.Fatal("no low-rank increment in the plan")
	}
	opt.LossWeights = map[string]float64{name: 1000}
	weighted, err := PlanBudget(ctx, dir, opt, 0.6, zero)
	if err != nil {
		t.Fatal(err)
	}
	if r := weighted.Ranks[name]; r != DenseIncrement && r <= plain.Ranks[name] {
		t.Errorf("%s: rank %d with weight 1000, %d without", name, r, plain.Ranks[name])
	}
	if weighted.Stored > int64(0.6*float64(weighted.Original)) {
		t.Errorf("weighted plan stores %d of %d, above the target", weighted.Stored, weighted.Original)
	}
	for _, w := range []float64{0, -1, math.Inf(1), math.NaN()} {
		opt.LossWeights = map[string]float64{name: w}
		if _, err := PlanBudget(ctx, dir, opt, 0.6, zero); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("weight %v: %v, want ErrInvalid", w, err)
		}
	}
}

// TestPlannerMatchesPlanBudget plans one checkpoint several times from one
// Planner, with and without loss weights and in both orders, and checks
// every plan equals PlanBudget's for the same inputs: the planner's
// spectra are not changed by a weighted plan.
func TestPlannerMatchesPlanBudget(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	modes := []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero}
	opt := Options{CompoundSize: 2}
	pl, err := NewPlanner(ctx, dir, opt, modes)
	if err != nil {
		t.Fatal(err)
	}
	first, err := pl.Plan(0.6, nil)
	if err != nil {
		t.Fatal(err)
	}
	heavy := map[string]float64{firstLowRank(first): 1000}
	for _, c := range []struct {
		target  float64
		weights map[string]float64
	}{{0.6, heavy}, {0.6, nil}, {0.8, heavy}, {0.8, nil}} {
		got, err := pl.Plan(c.target, c.weights)
		if err != nil {
			t.Fatal(err)
		}
		o := opt
		o.LossWeights = c.weights
		want, err := PlanBudget(ctx, dir, o, c.target, modes)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("target %v, weights %v: planner gives %+v, PlanBudget %+v", c.target, c.weights, got, want)
		}
	}
	if _, err := pl.Plan(0, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("target 0: %v, want ErrInvalid", err)
	}
}

// firstLowRank returns the first name, in sorted order, of a low-rank
// increment of plan ("" when there is none).
func firstLowRank(plan *BudgetPlan) string {
	var name string
	for n, r := range plan.Ranks {
		if r >= 0 && (name == "" || n < name) {
			name = n
		}
	}
	return name
}

// writeBitPlan compresses dir as plan says, stores it in the plan's
// schemes, and returns the file's manifest.
func writeBitPlan(t *testing.T, dir string, opt Options, plan *BitPlan) *vlora.Manifest {
	t.Helper()
	ctx := context.Background()
	opt.Base, opt.SuffixBases, opt.Ranks, opt.KeepModel = vlora.BaseZero, plan.SuffixBases, plan.Ranks(), true
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
	return mf
}

// TestBitPlanMeetsTheTarget plans the tiny Llama at several bit targets
// with the whole menu (low rank, mean bases), writes each plan and checks
// that the file stores what the plan counted, within the target, that a
// larger target loses no more, and that the plan is no worse, by its own
// estimate, than rounding every tensor to the uniform scheme of the same
// size. Plans forced onto each storage of the mean bases check that what
// the allocator may choose there is stored as counted too.
func TestBitPlanMeetsTheTarget(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	opt := Options{CompoundSize: 2}
	bp, err := NewBitPlanner(ctx, dir, opt, true)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, plan *BitPlan) {
		t.Helper()
		mf := writeBitPlan(t, dir, opt, plan)
		got, err := mf.BitsPerOriginalWeight()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-plan.BitsPerWeight()) > 1e-12 || mf.FormatVersion != 3 {
			t.Errorf("%s: file %.6f bits per weight (version %d), plan %.6f", what, got, mf.FormatVersion, plan.BitsPerWeight())
		}
	}
	prevLoss := math.Inf(1)
	for _, target := range []float64{2.75, 3.5, 4.6, 8.5} {
		plan, err := bp.PlanBits(target, nil)
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
		check(fmt.Sprint("target ", target), plan)
	}
	// Every mean-base layout, every item at its cheapest nonzero rank in
	// the base's scheme.
	for k, s := range FactorSchemes {
		plan := forcedMeanPlan(t, bp, k)
		check(fmt.Sprint("mean bases in ", s), plan)
	}
	// Uniform int4/g32 is one of the plans the planner could choose.
	uniform := quant.Scheme{Bits: 4, GroupSize: 32, Full: true}
	bits, loss := bp.fixed, 0.0
	for _, g := range bp.groups {
		for _, it := range g.layouts[0].items {
			j := slices.IndexFunc(it.options, func(o Option) bool { return o.Dense && o.Scheme == uniform })
			bits += it.options[j].Cost
			loss += it.options[j].Loss
		}
	}
	plan, err := bp.PlanBits(float64(bits)/float64(bp.original), nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Loss > loss {
		t.Errorf("plan at %.4f bits loses %g, uniform %s %g", plan.BitsPerWeight(), plan.Loss, uniform, loss)
	}
	if _, err := bp.PlanBits(0.5, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("target 0.5: %v", err)
	}
	if _, err := bp.Plan(0.5, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("a parameter target of a bit planner: %v", err)
	}
	if _, err := bp.PlanBits(4, map[string]float64{bp.Tensors()[0]: -1}); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("negative weight: %v", err)
	}
	// A planner whose one tensor stores at least 100 bits for 10 weights.
	one := &Planner{bits: true, groups: []planGroup{{layouts: []planLayout{{items: []planItem{{name: "w", layer: -1,
		options: []Option{{Dense: true, Cost: 100, Loss: 1}, {Dense: true, Cost: 200, Loss: 0.5}}}}}}}}, fixed: 20, original: 10}
	if _, err := one.PlanBits(11.9, nil); !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), "12.000 bits per weight") {
		t.Errorf("target 11.9, below the menu's 12: %v", err)
	}
	if p, err := one.PlanBits(12, nil); err != nil || p.Bits != 120 || p.Loss != 1 {
		t.Errorf("target 12: %+v, %v; want 120 bits, loss 1", p, err)
	}
	if p, err := one.PlanBits(25, map[string]float64{"w": 3}); err != nil || p.Bits != 220 || p.Loss != 1.5 {
		t.Errorf("target 25, weight 3: %+v, %v; want 220 bits, loss 1.5", p, err)
	}
}

// TestPlanOfParamsIsNotBits checks that a parameter planner refuses a bit
// budget.
func TestPlanOfParamsIsNotBits(t *testing.T) {
	pl, err := NewPlanner(context.Background(), testenv.GoldenModel(t, "llama-gqa-untied"), Options{CompoundSize: 2}, []vlora.BaseMode{vlora.BaseZero})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.PlanBits(4, nil); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("a bit target of a parameter planner: %v", err)
	}
}

// forcedMeanPlan returns the plan of bp (a low-rank bit planner) that puts
// every layer suffix in the mean-base layout with bases in FactorSchemes[k]
// and every increment at its cheapest nonzero rank in that scheme.
func forcedMeanPlan(t *testing.T, bp *Planner, k int) *BitPlan {
	t.Helper()
	s := FactorSchemes[k]
	a := &allocation{layout: make([]int, len(bp.groups)), option: make([][]int, len(bp.groups))}
	for gi, g := range bp.groups {
		li := 0
		if g.suffix != "" {
			li = 1 + k // layouts: zero, then mean with each base storage
		}
		lay := g.layouts[li]
		if g.suffix != "" && (lay.mode != vlora.BaseMean || lay.base != s) {
			t.Fatalf("%s: layout %d is %s %v, want mean %v", g.suffix, li, lay.mode, lay.base, s)
		}
		a.layout[gi] = li
		a.option[gi] = make([]int, len(lay.items))
		a.cost += lay.fixed
		for i, it := range lay.items {
			j := slices.IndexFunc(it.options, func(o Option) bool { return (o.Rank > 0 && o.Scheme == s) || g.suffix == "" })
			a.option[gi][i] = j
			a.cost += it.options[j].Cost
		}
	}
	plan := bp.bitPlan(a)
	if len(plan.BaseSchemes) == 0 {
		t.Fatal("no base in the forced plan")
	}
	return plan
}

// TestQuantizedMeanBaseTrains distills, quantization-aware, a plan with
// int4 mean bases and int4 factors, and checks that the stored bases
// are int4 values (the fake quantization rounds them as storage does) and
// that the file reads back as it was trained.
func TestQuantizedMeanBaseTrains(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	ctx := context.Background()
	opt := Options{CompoundSize: 2}
	bp, err := NewBitPlanner(ctx, dir, opt, true)
	if err != nil {
		t.Fatal(err)
	}
	const k = 2 // int4/g32
	plan := forcedMeanPlan(t, bp, k)
	copt := opt
	copt.Base, copt.SuffixBases, copt.Ranks, copt.KeepModel = vlora.BaseZero, plan.SuffixBases, plan.Ranks(), true
	res, err := Compress(ctx, dir, filepath.Join(t.TempDir(), "v"), copt)
	if err != nil {
		t.Fatal(err)
	}
	qp := plan.Quant()
	res.Model.Manifest.Quant = &qp
	teacher, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	train, err := dataset.Sample(ctx, teacher, 8, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := distill.Run(ctx, teacher, res.Model, train, distill.Options{Steps: 3, Batch: 4, LR: 1e-3}); err != nil {
		t.Fatal(err)
	}
	var bases int
	for name, tn := range res.Model.Tensors {
		sc, ok := qp.SchemeOf(name, tn.Shape)
		if !ok || !strings.HasSuffix(name, ".base") {
			continue
		}
		if sc != FactorSchemes[k] {
			t.Errorf("%s: scheme %v, want %v", name, sc, FactorSchemes[k])
		}
		bases++
		rows, cols := vlora.Matrix(tn.Shape)
		q := make([]float32, len(tn.Data))
		quant.FakeQuant(q, tn.Data, rows, cols, sc)
		if !slices.Equal(q, tn.Data) {
			t.Errorf("%s: trained base is not %v values", name, sc)
		}
	}
	if bases == 0 {
		t.Fatal("no quantized base in the file")
	}
	if err := res.Model.Save(res.Path); err != nil {
		t.Fatal(err)
	}
	back, err := vlora.Load(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, tn := range res.Model.Tensors {
		if !slices.Equal(back.Tensors[name].Data, tn.Data) {
			t.Errorf("%s: read back differs from the trained tensor", name)
		}
	}
}
