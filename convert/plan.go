package convert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/budget"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// BudgetPlan is a parameter budget spent on a checkpoint's layer stack: a
// base mode per suffix and a rank (or DenseIncrement) per layer tensor, to
// be passed to Compress as Options.SuffixBases and Options.Ranks.
type BudgetPlan struct {
	SuffixBases map[string]vlora.BaseMode
	Ranks       map[string]int
	// Stored is the number of floats the plan stores (pass-through tensors
	// included) and Original the checkpoint's.
	Stored, Original int64
	// Loss is the summed relative truncation error Σ‖E·L‖²/‖W·L‖² over the
	// increments (L = I without Gram matrices).
	Loss float64
}

// PlanBudget chooses, for the checkpoint in modelDir cut into compounds of
// opt.CompoundSize layers, one base mode per 2-D suffix among modes and a
// rank per increment, so that the stored floats are at most
// target·(original floats) and the summed relative truncation error is as
// small as the greedy allocation of package budget makes it. An increment's
// error is measured in the whitened space of opt.Grams when its tensor has a
// Gram matrix there, and is relative to the layer's own (whitened) weight,
// so every layer counts alike. With opt.Align the layers are aligned first,
// as Compress aligns them. opt.LossWeights, when set, multiplies each named
// increment's relative error. 1-D tensors are stored per layer without a
// base (their exact and cheapest form).
//
// PlanBudget is NewPlanner followed by Plan; a caller that plans the same
// checkpoint more than once (other targets, other loss weights) keeps the
// Planner instead, which reads and factors every tensor only once.
func PlanBudget(ctx context.Context, modelDir string, opt Options, target float64, modes []vlora.BaseMode) (*BudgetPlan, error) {
	if !(target > 0 && target <= 1) {
		return nil, fmt.Errorf("%w: parameter target %v must be in (0, 1]", formats.ErrInvalid, target)
	}
	pl, err := NewPlanner(ctx, modelDir, opt, modes)
	if err != nil {
		return nil, err
	}
	return pl.Plan(target, opt.LossWeights)
}

// Planner holds the spectrum of every increment of a checkpoint's layer
// stack under each candidate base mode (see PlanBudget), so that budgets
// can be chosen for several targets and loss weights without reading or
// factoring the tensors again. A Planner is not changed by Plan and may be
// used from several goroutines.
type Planner struct {
	modes   []vlora.BaseMode
	st      *vlora.Stack
	groups  []budget.Group // unweighted: every Matrix.Weight is 1/‖W·L‖²
	members [][]planMember // per group, per layout
	// fixed counts the floats stored whatever the plan (tensors outside
	// the stack, 1-D tensors); original all of the checkpoint's.
	fixed, original int64
	oneD            []string // 1-D suffixes, stored per layer without a base
}

// NewPlanner reads the checkpoint in modelDir and computes the spectra
// PlanBudget allocates from: opt.CompoundSize, opt.Grams and opt.Align (with
// opt.Alignment) are used as PlanBudget uses them; opt.LossWeights is not
// (Plan takes the weights).
func NewPlanner(ctx context.Context, modelDir string, opt Options, modes []vlora.BaseMode) (*Planner, error) {
	if opt.CompoundSize < 0 {
		return nil, fmt.Errorf("%w: compound size %d must be at least 1", formats.ErrInvalid, opt.CompoundSize)
	}
	if len(modes) == 0 {
		return nil, fmt.Errorf("%w: no base modes to choose from", formats.ErrInvalid)
	}
	ck, st, err := openSource(modelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	pl := &Planner{modes: modes, st: st}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		pl.original += int64(ti.NumElements())
		if _, _, in := st.Split(n); !in {
			pl.fixed += int64(ti.NumElements())
		}
	}
	compounds := vlora.Compounds(st.NumLayers, cmp.Or(opt.CompoundSize, DefaultCompoundSize))
	al, err := alignment(ctx, ck, st, opt)
	if err != nil {
		return nil, err
	}
	read := func(name string) ([]float64, error) {
		data, err := ck.ReadFloat64(name)
		if err != nil {
			return nil, err
		}
		return data, align.Apply(al, name, data)
	}
	for _, s := range st.Suffixes {
		shape := st.Shapes[s]
		if len(shape) < 2 {
			pl.oneD = append(pl.oneD, s)
			pl.fixed += int64(st.NumLayers * vlora.NumElements(shape))
			continue
		}
		g, mem, err := suffixGroup(ctx, read, st, compounds, s, modes, opt.Grams)
		if err != nil {
			return nil, err
		}
		pl.groups = append(pl.groups, g)
		pl.members = append(pl.members, mem)
	}
	return pl, nil
}

// Plan chooses the base modes and ranks that store at most
// target·(original floats), target in (0, 1], with each named increment's
// relative error multiplied by weights[name] (positive and finite; absent
// names weigh 1, and nil weighs every increment alike).
func (pl *Planner) Plan(target float64, weights map[string]float64) (*BudgetPlan, error) {
	if !(target > 0 && target <= 1) {
		return nil, fmt.Errorf("%w: parameter target %v must be in (0, 1]", formats.ErrInvalid, target)
	}
	groups := make([]budget.Group, len(pl.groups))
	for gi, g := range pl.groups {
		groups[gi] = budget.Group{Name: g.Name, Layouts: make([]budget.Layout, len(g.Layouts))}
		for li, lay := range g.Layouts {
			mats := append([]budget.Matrix(nil), lay.Mats...)
			mb := pl.members[gi][li]
			for mi := range mats {
				name := pl.st.Name(mb.layers[mi], mb.suffix)
				if w, ok := weights[name]; ok {
					if !(w > 0) || math.IsInf(w, 0) {
						return nil, fmt.Errorf("layer %d %s: %w: loss weight %v must be positive and finite", mb.layers[mi], mb.suffix, formats.ErrInvalid, w)
					}
					mats[mi].Weight *= w
				}
			}
			groups[gi].Layouts[li] = budget.Layout{Name: lay.Name, Fixed: lay.Fixed, Mats: mats}
		}
	}
	plan := &BudgetPlan{SuffixBases: map[string]vlora.BaseMode{}, Ranks: map[string]int{}, Original: pl.original}
	for _, s := range pl.oneD {
		plan.SuffixBases[s] = vlora.BaseZero
	}
	limit := int64(math.Floor(target * float64(pl.original)))
	p, err := budget.Choose(groups, limit-pl.fixed)
	if errors.Is(err, budget.ErrOverBudget) {
		least := pl.fixed
		for _, g := range groups {
			m := int64(math.MaxInt64)
			for _, l := range g.Layouts {
				m = min(m, l.Fixed)
			}
			least += m
		}
		return nil, fmt.Errorf("%w: a parameter target of %v allows %d of the original's %d parameters, fewer than the %d (%.2f%%) that its bases, embeddings and other dense tensors take even at rank 0; ask for a target of at least %.4f",
			formats.ErrInvalid, target, limit, pl.original, least, 100*float64(least)/float64(pl.original), math.Ceil(1e4*float64(least)/float64(pl.original))/1e4)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: target %v: %v", formats.ErrInvalid, target, err)
	}
	plan.Stored, plan.Loss = pl.fixed+p.Floats, p.Loss
	for gi, li := range p.Layout {
		mb := pl.members[gi][li]
		plan.SuffixBases[mb.suffix] = pl.modes[li]
		for i, c := range p.Choices[gi] {
			r := c.Rank
			if c.Dense {
				r = DenseIncrement
			}
			plan.Ranks[pl.st.Name(mb.layers[i], mb.suffix)] = r
		}
	}
	return plan, nil
}

// planMember lists, for one layout of a suffix, the layer of each of its
// increments in budget order.
type planMember struct {
	suffix string
	layers []int
}

// suffixGroup returns the budget group of the 2-D suffix s: one layout per
// base mode, each with the fixed cost of its bases and the spectrum of
// every increment. A tensor's whitener serves all of its modes.
func suffixGroup(ctx context.Context, read func(string) ([]float64, error), st *vlora.Stack, compounds [][]int, s string, modes []vlora.BaseMode, grams map[string]*mat.SymDense) (budget.Group, []planMember, error) {
	rows, cols := vlora.Matrix(st.Shapes[s])
	g := budget.Group{Name: s}
	var mem []planMember
	whiteners := map[string]*svd.Whitener{}
	for _, mode := range modes {
		lay := budget.Layout{Name: string(mode)}
		mb := planMember{suffix: s}
		for _, layers := range compounds {
			base, _, err := compoundBase(ctx, read, st, layers, s, mode)
			if err != nil {
				return g, nil, err
			}
			if base != nil {
				lay.Fixed += int64(rows * cols)
			}
			for j, l := range layers {
				if j == 0 && mode == vlora.BaseFirst {
					continue
				}
				name := st.Name(l, s)
				wh := whiteners[name]
				if gram := grams[name]; gram != nil && wh == nil {
					if wh, err = svd.NewWhitener(gram, svd.DefaultDamping); err != nil {
						return g, nil, fmt.Errorf("layer %d %s: %w", l, s, err)
					}
					whiteners[name] = wh
				}
				m, err := spectrumOf(read, name, base, rows, cols, wh)
				if err != nil {
					return g, nil, fmt.Errorf("layer %d %s: %w", l, s, err)
				}
				lay.Mats = append(lay.Mats, m)
				mb.layers = append(mb.layers, l)
			}
		}
		g.Layouts = append(g.Layouts, lay)
		mem = append(mem, mb)
	}
	return g, mem, nil
}

// spectrumOf returns the budget item of one increment W − base (W when base
// is nil): its singular values, whitened by wh when it is not nil, weighted
// by 1/‖W·L‖².
func spectrumOf(read func(string) ([]float64, error), name string, base []float64, rows, cols int, wh *svd.Whitener) (budget.Matrix, error) {
	w, err := read(name)
	if err != nil {
		return budget.Matrix{}, err
	}
	d := make([]float64, len(w))
	copy(d, w)
	if base != nil {
		for i := range d {
			d[i] -= base[i]
		}
	}
	wm, dm := mat.NewDense(rows, cols, w), mat.NewDense(rows, cols, d)
	var s []float64
	var norm float64
	if wh != nil {
		var err error
		if s, err = wh.Spectrum(dm); err != nil {
			return budget.Matrix{}, err
		}
		var wl mat.Dense
		wl.Mul(wm, wh.L)
		norm = mat.Norm(&wl, 2)
	} else {
		var f mat.SVD
		if !f.Factorize(dm, mat.SVDNone) {
			return budget.Matrix{}, fmt.Errorf("SVD did not converge")
		}
		s = f.Values(nil)
		norm = mat.Norm(wm, 2)
	}
	m := budget.Matrix{Rows: rows, Cols: cols, Spectrum: s, Weight: 1}
	if norm > 0 {
		m.Weight = 1 / (norm * norm)
	}
	return m, nil
}
