package convert

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
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
