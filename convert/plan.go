package convert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
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
	// increments (L = I without Gram matrices), each weighted.
	Loss float64
}

// BitPlan is a bit budget spent on a checkpoint: one option per 2-D
// tensor, keyed by original name, and a base mode (and the bases' storage)
// per layer suffix.
type BitPlan struct {
	Choices map[string]Option
	// SuffixBases is the base mode of every 2-D layer suffix, to be passed
	// to Compress as Options.SuffixBases; BaseSchemes the storage of the
	// compound bases of the suffixes with a base (the zero Scheme: float).
	SuffixBases map[string]vlora.BaseMode
	BaseSchemes map[string]quant.Scheme
	// Bits is what the file stores (the 1-D tensors in float included), as
	// vlora.Manifest.Storage counts it; Original is the checkpoint's
	// parameter count.
	Bits, Original int64
	// Loss is the summed weighted estimated loss of the choices and of the
	// rounding of the bases.
	Loss      float64
	st        *vlora.Stack
	compounds int
}

// BitsPerWeight returns Bits per original weight.
func (p *BitPlan) BitsPerWeight() float64 { return float64(p.Bits) / float64(p.Original) }

// Ranks returns the Options.Ranks of the plan: each layer tensor's rank,
// or DenseIncrement.
func (p *BitPlan) Ranks() map[string]int {
	out := map[string]int{}
	for name, c := range p.Choices {
		if _, _, in := p.st.Split(name); !in {
			continue
		}
		if c.Dense {
			out[name] = DenseIncrement
		} else {
			out[name] = c.Rank
		}
	}
	return out
}

// Quant returns the storage of the plan: the scheme of every stored 2-D
// tensor, by stored name (the zero Scheme for those kept in float).
func (p *BitPlan) Quant() vlora.QuantPlan {
	qp := vlora.QuantPlan{Tensors: map[string]quant.Scheme{}}
	for name, c := range p.Choices {
		l, s, in := p.st.Split(name)
		switch {
		case !in:
			qp.Tensors[name] = c.Scheme
		case c.Dense:
			qp.Tensors[vlora.DeltaName(l, s)] = c.Scheme
		case c.Rank > 0:
			qp.Tensors[vlora.LoraAName(l, s)] = c.Scheme
			qp.Tensors[vlora.LoraBName(l, s)] = c.Scheme
		}
	}
	for s, sc := range p.BaseSchemes {
		for c := range p.compounds {
			qp.Tensors[vlora.BaseName(c, s)] = sc
		}
	}
	return qp
}

// Planner holds, for every 2-D tensor of a checkpoint, a menu of options
// with their cost and estimated loss, so that budgets can be spent for
// several targets and loss weights without reading or factoring the
// tensors again. One Planner serves one unit: a parameter budget
// (NewPlanner, then Plan) or a bit budget (NewBitPlanner, then PlanBits).
// Both spend the budget with the same allocation: every tensor keeps the
// options on the lower convex hull of its (cost, loss) points, a Lagrange
// multiplier found by bisection picks one per tensor (and one base layout
// per layer suffix), and what is left is spent greedily on the steps of
// most loss saved per unit of cost.
//
// The layer tensors of a suffix form a group with one layout per base
// mode: with a base (mean or first layer) each compound stores a base,
// shared by its layers, and each layer's increment W − base; with none,
// each layer stores W. Every increment (or pass-through tensor, under a
// bit budget) then takes one Option. The losses of layer tensors are
// whitened by their Gram matrix in Options.Grams when there is one.
//
// A Planner is not changed by planning and may be used from several
// goroutines.
type Planner struct {
	bits      bool
	st        *vlora.Stack
	compounds int
	groups    []planGroup
	// fixed counts what is stored whatever the plan (values under a
	// parameter budget, bits under a bit budget): 1-D tensors, and under a
	// parameter budget the tensors outside the stack. original is the
	// checkpoint's parameter count.
	fixed, original int64
	oneD            []string // 1-D suffixes, stored per layer without a base
	names           []string // planned 2-D tensors, sorted
}

// planGroup is one layer suffix (suffix set) or one pass-through tensor.
type planGroup struct {
	suffix  string
	layouts []planLayout
}

// planLayout is one way to store a group.
type planLayout struct {
	mode vlora.BaseMode
	// base is the storage of the compound bases (bit budget, with a base).
	base quant.Scheme
	// fixed is what the bases store; baseLoss[i] is the rounding loss the
	// bases add to item i (nil: none).
	fixed    int64
	baseLoss []float64
	items    []planItem
}

// planItem is one tensor (the increment of a layer, or a pass-through
// tensor) with its options.
type planItem struct {
	name    string
	layer   int
	options []Option
}

// PlanBudget chooses, for the checkpoint in modelDir cut into compounds of
// opt.CompoundSize layers, one base mode per 2-D suffix among modes and a
// rank per increment, so that the stored floats are at most
// target·(original floats) and the summed relative truncation error is as
// small as the allocation of Planner makes it. An increment's error is
// measured in the whitened space of opt.Grams when its tensor has a Gram
// matrix there, and is relative to the layer's own (whitened) weight, so
// every layer counts alike. With opt.Align the layers are aligned first,
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

// NewPlanner reads the checkpoint in modelDir and computes the menu of a
// parameter budget: for every increment of every 2-D layer suffix under
// each of modes, every rank whose factors are smaller than the tensor and
// dense storage, in stored values, with the whitened truncation error as
// loss (the factors and bases float). Tensors outside the layer stack are
// stored as they are. opt.CompoundSize, opt.Grams and opt.Align (with
// opt.Alignment) are used as PlanBudget uses them; opt.LossWeights is not
// (Plan takes the weights).
func NewPlanner(ctx context.Context, modelDir string, opt Options, modes []vlora.BaseMode) (*Planner, error) {
	if len(modes) == 0 {
		return nil, fmt.Errorf("%w: no base modes to choose from", formats.ErrInvalid)
	}
	return newPlanner(ctx, modelDir, opt, modes, false, false)
}

// NewBitPlanner reads the checkpoint in modelDir and computes the menu of a
// bit budget, in bits as vlora.Manifest.Storage counts them (codes and F16
// scales; opt.DType, default F32, for float storage):
//
//   - every 2-D tensor, pass-through tensors (embeddings, head) included:
//     dense in the file's float dtype or in each of DenseSchemes;
//   - with lowRank, layer tensors also: low rank with no base, and a layout
//     per layer suffix with a mean base per compound of opt.CompoundSize
//     layers, stored in each of FactorSchemes, whose increments are dense
//     (as above) or low rank; low rank at the ranks of lowRankRanks with
//     the factors in each of FactorSchemes, and rank 0.
//
// Losses are described at Option; a quantized base adds to every layer of
// its compound the whitened rounding error of the base relative to that
// layer's weight (added to the increment's loss, the two roundings taken
// as independent). Layer tensors with a Gram matrix in opt.Grams have
// whitened losses; pass-through tensors plain ones. 1-D tensors are stored
// in float. opt.Align is not supported.
//
// Low rank is not in the default menu: before training it lost to dense
// quantization wherever it was measured from 3.5 bits up (docs/quality.md).
// The first-layer base (vlora.BaseFirst) is not on the menu: its base is a
// layer stored dense, which the mean base's layout already covers better.
func NewBitPlanner(ctx context.Context, modelDir string, opt Options, lowRank bool) (*Planner, error) {
	if opt.Align {
		return nil, fmt.Errorf("%w: a bit budget does not align layers", formats.ErrInvalid)
	}
	modes := []vlora.BaseMode{vlora.BaseZero}
	if lowRank {
		modes = append(modes, vlora.BaseMean)
	}
	return newPlanner(ctx, modelDir, opt, modes, true, lowRank)
}

func newPlanner(ctx context.Context, modelDir string, opt Options, modes []vlora.BaseMode, bits, lowRank bool) (*Planner, error) {
	if opt.CompoundSize < 0 {
		return nil, fmt.Errorf("%w: compound size %d must be at least 1", formats.ErrInvalid, opt.CompoundSize)
	}
	dt := cmp.Or(opt.DType, formats.F32)
	floatBits := int64(8 * dt.Size())
	ck, st, err := openSource(modelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	compounds := vlora.Compounds(st.NumLayers, cmp.Or(opt.CompoundSize, DefaultCompoundSize))
	pl := &Planner{bits: bits, st: st, compounds: len(compounds)}
	// unit converts stored values into the budget's unit.
	unit := int64(1)
	if bits {
		unit = floatBits
	}
	names := slices.Clone(ck.Names())
	sort.Strings(names)
	for _, n := range names {
		ti, _ := ck.Info(n)
		size := int64(ti.NumElements())
		pl.original += size
		if _, _, in := st.Split(n); in {
			continue
		}
		if !bits || len(ti.Shape) < 2 {
			pl.fixed += unit * size
			continue
		}
		// A pass-through 2-D tensor: a group of one item.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err := ck.ReadFloat64(n)
		if err != nil {
			return nil, err
		}
		rows, cols := vlora.Matrix(ti.Shape)
		tm := newTensorMenu(w, nil, rows, cols, nil)
		pl.groups = append(pl.groups, planGroup{layouts: []planLayout{{items: []planItem{{name: n, layer: -1, options: tm.denseBitOptions(floatBits)}}}}})
		pl.names = append(pl.names, n)
	}
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
	var stackGroups []planGroup
	for _, s := range st.Suffixes {
		shape := st.Shapes[s]
		if len(shape) < 2 {
			pl.oneD = append(pl.oneD, s)
			pl.fixed += unit * int64(st.NumLayers*vlora.NumElements(shape))
			continue
		}
		g, err := suffixGroup(ctx, read, st, compounds, s, modes, opt.Grams, bits, lowRank, floatBits)
		if err != nil {
			return nil, err
		}
		stackGroups = append(stackGroups, g)
		for l := range st.NumLayers {
			pl.names = append(pl.names, st.Name(l, s))
		}
	}
	// Layer suffixes first, as the parameter budget always ordered them.
	pl.groups = append(stackGroups, pl.groups...)
	sort.Strings(pl.names)
	if bits && len(pl.groups) == 0 {
		return nil, fmt.Errorf("%s: %w: no 2-D tensors to plan", modelDir, formats.ErrInvalid)
	}
	return pl, nil
}

// suffixGroup returns the group of the 2-D suffix s: one layout per base
// mode (under a bit budget with lowRank, one per storage of the mean base
// in FactorSchemes), each with the cost of its bases and the options of
// every increment. A tensor's whitener serves all of its modes.
func suffixGroup(ctx context.Context, read func(string) ([]float64, error), st *vlora.Stack, compounds [][]int, s string, modes []vlora.BaseMode, grams map[string]*mat.SymDense, bits, lowRank bool, floatBits int64) (planGroup, error) {
	rows, cols := vlora.Matrix(st.Shapes[s])
	g := planGroup{suffix: s}
	whiteners := map[string]*svd.Whitener{}
	for _, mode := range modes {
		baseSchemes := []quant.Scheme{{}}
		if bits && mode != vlora.BaseZero {
			baseSchemes = FactorSchemes
		}
		lays := make([]planLayout, len(baseSchemes))
		for k, bs := range baseSchemes {
			lays[k] = planLayout{mode: mode, base: bs}
		}
		for _, layers := range compounds {
			if err := ctx.Err(); err != nil {
				return g, err
			}
			base, _, err := compoundBase(ctx, read, st, layers, s, mode)
			if err != nil {
				return g, err
			}
			for j, l := range layers {
				if j == 0 && mode == vlora.BaseFirst {
					continue
				}
				name := st.Name(l, s)
				wh := whiteners[name]
				if gram := grams[name]; gram != nil && wh == nil {
					if wh, err = svd.NewWhitener(gram, svd.DefaultDamping); err != nil {
						return g, fmt.Errorf("layer %d %s: %w", l, s, err)
					}
					whiteners[name] = wh
				}
				w, err := read(name)
				if err != nil {
					return g, err
				}
				tm := newTensorMenu(w, base, rows, cols, wh)
				var opts []Option
				switch {
				case !bits:
					opts, err = tm.paramOptions()
				case lowRank:
					var lr []Option
					if lr, err = tm.lowRankBitOptions(floatBits); err == nil {
						opts = append(tm.denseBitOptions(floatBits), lr...)
					}
				default:
					opts = tm.denseBitOptions(floatBits)
				}
				if err != nil {
					return g, fmt.Errorf("layer %d %s: %w", l, s, err)
				}
				for k := range lays {
					it := planItem{name: name, layer: l, options: opts}
					lays[k].items = append(lays[k].items, it)
					if base != nil && bits {
						lays[k].baseLoss = append(lays[k].baseLoss, tm.baseLoss(base, lays[k].base))
					}
				}
			}
			if base != nil {
				for k := range lays {
					if bits {
						lays[k].fixed += schemeBits(lays[k].base, rows, cols, floatBits)
					} else {
						lays[k].fixed += int64(rows * cols)
					}
				}
			}
		}
		g.layouts = append(g.layouts, lays...)
	}
	return g, nil
}

// Tensors returns the names of the planned 2-D tensors, sorted: the layer
// tensors, and under a bit budget the pass-through ones.
func (pl *Planner) Tensors() []string { return slices.Clone(pl.names) }

// allocate weighs every option's loss by weights[name] (positive and
// finite; absent names weigh 1) and spends limit (fixed part included).
func (pl *Planner) allocate(weights map[string]float64, limit int64) (*allocation, error) {
	groups := make([]allocGroup, len(pl.groups))
	for gi, g := range pl.groups {
		groups[gi].layouts = make([]allocLayout, len(g.layouts))
		for li, lay := range g.layouts {
			al := allocLayout{fixed: point{cost: lay.fixed}, items: make([][]point, len(lay.items))}
			for i, it := range lay.items {
				w := 1.0
				if v, ok := weights[it.name]; ok {
					if !(v > 0) || math.IsInf(v, 0) {
						if it.layer >= 0 {
							return nil, fmt.Errorf("layer %d %s: %w: loss weight %v must be positive and finite", it.layer, g.suffix, formats.ErrInvalid, v)
						}
						return nil, fmt.Errorf("%s: %w: loss weight %v must be positive and finite", it.name, formats.ErrInvalid, v)
					}
					w = v
				}
				pts := make([]point, len(it.options))
				for j, o := range it.options {
					pts[j] = point{cost: o.Cost, loss: w * o.Loss}
				}
				al.items[i] = pts
				if lay.baseLoss != nil {
					al.fixed.loss += w * lay.baseLoss[i]
				}
			}
			groups[gi].layouts[li] = al
		}
	}
	return allocate(groups, limit-pl.fixed)
}

// Plan spends a parameter budget (a Planner from NewPlanner): it chooses
// the base modes and ranks that store at most target·(original floats),
// target in (0, 1], with each named increment's relative error multiplied
// by weights[name] (positive and finite; absent names weigh 1, and nil
// weighs every increment alike).
func (pl *Planner) Plan(target float64, weights map[string]float64) (*BudgetPlan, error) {
	if pl.bits {
		return nil, fmt.Errorf("%w: a planner of bits spends no parameter budget", formats.ErrInvalid)
	}
	if !(target > 0 && target <= 1) {
		return nil, fmt.Errorf("%w: parameter target %v must be in (0, 1]", formats.ErrInvalid, target)
	}
	limit := int64(math.Floor(target * float64(pl.original)))
	a, err := pl.allocate(weights, limit)
	var over errOverBudget
	if errors.As(err, &over) {
		least := pl.fixed + over.least
		return nil, fmt.Errorf("%w: a parameter target of %v allows %d of the original's %d parameters, fewer than the %d (%.2f%%) that its bases, embeddings and other dense tensors take even at rank 0; ask for a target of at least %.4f",
			formats.ErrInvalid, target, limit, pl.original, least, 100*float64(least)/float64(pl.original), math.Ceil(1e4*float64(least)/float64(pl.original))/1e4)
	}
	if err != nil {
		return nil, err
	}
	plan := &BudgetPlan{SuffixBases: map[string]vlora.BaseMode{}, Ranks: map[string]int{}, Original: pl.original,
		Stored: pl.fixed + a.cost, Loss: a.loss}
	for _, s := range pl.oneD {
		plan.SuffixBases[s] = vlora.BaseZero
	}
	for gi, g := range pl.groups {
		lay := g.layouts[a.layout[gi]]
		plan.SuffixBases[g.suffix] = lay.mode
		for i, it := range lay.items {
			o := it.options[a.option[gi][i]]
			r := o.Rank
			if o.Dense {
				r = DenseIncrement
			}
			plan.Ranks[it.name] = r
		}
	}
	return plan, nil
}

// PlanBits spends a bit budget (a Planner from NewBitPlanner): it chooses
// one option per 2-D tensor, and a base layout per layer suffix, so that
// the file stores at most target bits per original weight, target in
// [MinTargetBits, 32], with each named tensor's loss multiplied by
// weights[name] as in Plan.
func (pl *Planner) PlanBits(target float64, weights map[string]float64) (*BitPlan, error) {
	if !pl.bits {
		return nil, fmt.Errorf("%w: a planner of parameters spends no bit budget", formats.ErrInvalid)
	}
	if !(target >= MinTargetBits && target <= 32) {
		return nil, fmt.Errorf("%w: bit target %v must be in [%v, 32]", formats.ErrInvalid, target, MinTargetBits)
	}
	limit := int64(math.Floor(target * float64(pl.original)))
	a, err := pl.allocate(weights, limit)
	var over errOverBudget
	if errors.As(err, &over) {
		return nil, fmt.Errorf("%w: bit target %v is below the least this menu stores, %.3f bits per weight", formats.ErrInvalid, target, float64(over.least+pl.fixed)/float64(pl.original))
	}
	if err != nil {
		return nil, err
	}
	return pl.bitPlan(a), nil
}

// bitPlan returns the BitPlan of the allocation a.
func (pl *Planner) bitPlan(a *allocation) *BitPlan {
	plan := &BitPlan{Choices: map[string]Option{}, SuffixBases: map[string]vlora.BaseMode{}, BaseSchemes: map[string]quant.Scheme{},
		Bits: pl.fixed + a.cost, Original: pl.original, Loss: a.loss, st: pl.st, compounds: pl.compounds}
	for gi, g := range pl.groups {
		lay := g.layouts[a.layout[gi]]
		if g.suffix != "" {
			plan.SuffixBases[g.suffix] = lay.mode
			if lay.mode != vlora.BaseZero {
				plan.BaseSchemes[g.suffix] = lay.base
			}
		}
		for i, it := range lay.items {
			plan.Choices[it.name] = it.options[a.option[gi][i]]
		}
	}
	return plan
}
