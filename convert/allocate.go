package convert

import (
	"errors"
	"math"
	"slices"
	"sort"
)

// point is one option of an allocation item: what it stores (in the
// budget's unit, parameters or bits) and its weighted estimated loss.
type point struct {
	cost int64
	loss float64
}

// allocLayout is one way to store a group: a fixed part (shared bases,
// which cost and lose whatever the items choose) and the items, each with
// its options.
type allocLayout struct {
	fixed point
	items [][]point
}

// allocGroup is a set of items with alternative layouts, of which exactly
// one is used (for instance one tensor kind across layers, with or without
// a shared base).
type allocGroup struct {
	layouts []allocLayout
}

// allocation is the result of allocate.
type allocation struct {
	// layout[g] is the index of the layout chosen for group g, and
	// option[g][i] the index of the option chosen for its item i.
	layout []int
	option [][]int
	// cost and loss are the totals, fixed parts included.
	cost int64
	loss float64
}

// errOverBudget reports a limit below the least the groups can store;
// least is that.
type errOverBudget struct{ least int64 }

func (e errOverBudget) Error() string {
	return "the cheapest option of every tensor exceeds the budget"
}

// allocate chooses one layout per group and one option per item of the
// chosen layouts so that the total cost is at most limit and the total
// loss is as small as a Lagrangian allocation makes it:
//
//  1. every item keeps only the options on the lower convex hull of its
//     (cost, loss) points;
//  2. for a multiplier λ, every group takes the layout, and every item of
//     it the hull option, that minimise Σ loss + λ·cost; the smallest λ
//     whose choice fits in limit is found by bisection (in log space);
//  3. the cost left is spent greedily: among every item's options (not
//     only its hull) that fit and lose less than its current one, the
//     step of most loss saved per unit of cost is taken, until none fits;
//  4. each group in turn tries every other layout, the others' kept, with
//     steps 2 and 3 for the items, until no change lowers the total loss.
//
// For items whose options are all on their hull, step 2 is exact for the
// limits its choices meet (the Lagrangian relaxation has no gap there),
// and step 3 fills the gap left by the one step that did not fit. A shared
// part is bought whole, which the Lagrangian choice of step 2 can miss;
// step 4 corrects that as far as one group at a time can. Ties go to the
// layout of least fixed cost, then to the first layout and the first item. allocate returns errOverBudget
// when even the cheapest choice exceeds limit.
func allocate(groups []allocGroup, limit int64) (*allocation, error) {
	if len(groups) == 0 {
		return &allocation{}, nil
	}
	// hulls[g][l][i] lists the hull options of item i, cheapest first.
	hulls := make([][][][]int, len(groups))
	var least int64
	for g, gr := range groups {
		if len(gr.layouts) == 0 {
			return nil, errors.New("allocate: a group has no layout")
		}
		hulls[g] = make([][][]int, len(gr.layouts))
		cheapest := int64(math.MaxInt64)
		for l, lay := range gr.layouts {
			hulls[g][l] = make([][]int, len(lay.items))
			c := lay.fixed.cost
			for i, opts := range lay.items {
				if len(opts) == 0 {
					return nil, errors.New("allocate: an item has no option")
				}
				h := lowerHull(opts)
				hulls[g][l][i] = h
				c += opts[h[0]].cost
			}
			cheapest = min(cheapest, c)
		}
		least += cheapest
	}
	if least > limit {
		return nil, errOverBudget{least: least}
	}
	best := solve(groups, hulls, limit, nil)
	// Coordinate descent over the layouts: the Lagrangian choice of a
	// layout can miss, since a shared part is bought whole (see the
	// "fixed loss" case of the tests).
	for changed := true; changed; {
		changed = false
		for g, gr := range groups {
			for l := range gr.layouts {
				if l == best.layout[g] {
					continue
				}
				pin := slices.Clone(best.layout)
				pin[g] = l
				if try := solve(groups, hulls, limit, pin); try.cost <= limit && try.loss < best.loss {
					best, changed = try, true
				}
			}
		}
	}
	return best, nil
}

// solve is steps 2 and 3 of allocate, with group g's layout pinned to
// pin[g] when pin is not nil. Its cost exceeds limit only when the pinned
// layouts do not fit.
func solve(groups []allocGroup, hulls [][][][]int, limit int64, pin []int) *allocation {
	a := &allocation{layout: make([]int, len(groups)), option: make([][]int, len(groups))}
	// pick fills a with the Lagrangian choice at lambda and returns its cost.
	pick := func(lambda float64) int64 {
		var total int64
		for g, gr := range groups {
			bestL, bestV, bestC := 0, math.Inf(1), int64(0)
			var bestO []int
			for l, lay := range gr.layouts {
				if pin != nil && pin[g] != l {
					continue
				}
				v := lay.fixed.loss + lambda*float64(lay.fixed.cost)
				c := lay.fixed.cost
				o := make([]int, len(lay.items))
				for i, opts := range lay.items {
					bj, bv := 0, math.Inf(1)
					for _, j := range hulls[g][l][i] {
						if w := opts[j].loss + lambda*float64(opts[j].cost); w < bv {
							bj, bv = j, w
						}
					}
					o[i] = bj
					v += bv
					c += opts[bj].cost
				}
				// Within rounding of each other, the layout of smaller
				// fixed cost wins: a shared part must pay for itself.
				tie := bestO != nil && math.Abs(v-bestV) <= 1e-12*math.Abs(bestV)
				if bestO == nil || (v < bestV && !tie) || (tie && lay.fixed.cost < gr.layouts[bestL].fixed.cost) {
					bestL, bestV, bestC, bestO = l, v, c, o
				}
			}
			a.layout[g], a.option[g] = bestL, bestO
			total += bestC
		}
		return total
	}
	// λ in [lo, hi]: hi meets the limit, lo does not. A λ of 2⁹⁰⁰ picks
	// the cheapest option of every item.
	lo, hi := 1e-30, 1.0
	if pick(lo) <= limit {
		hi = lo
	} else {
		for pick(hi) > limit && hi < 1e270 {
			lo, hi = hi, hi*16
		}
		for range 200 {
			mid := math.Sqrt(lo * hi)
			if pick(mid) > limit {
				lo = mid
			} else {
				hi = mid
			}
			if hi/lo < 1+1e-9 {
				break
			}
		}
	}
	a.cost = pick(hi)
	// Spend what is left on the steps of most loss saved per unit of cost.
	for {
		bg, bi, bj, best := -1, 0, 0, 0.0
		for g, gr := range groups {
			lay := gr.layouts[a.layout[g]]
			for i, opts := range lay.items {
				cur := opts[a.option[g][i]]
				for j, o := range opts {
					dc := o.cost - cur.cost
					if dc <= 0 || o.loss >= cur.loss || a.cost+dc > limit {
						continue
					}
					if gain := (cur.loss - o.loss) / float64(dc); gain > best {
						bg, bi, bj, best = g, i, j, gain
					}
				}
			}
		}
		if bg < 0 {
			break
		}
		opts := groups[bg].layouts[a.layout[bg]].items[bi]
		a.cost += opts[bj].cost - opts[a.option[bg][bi]].cost
		a.option[bg][bi] = bj
	}
	for g, gr := range groups {
		lay := gr.layouts[a.layout[g]]
		a.loss += lay.fixed.loss
		for i, opts := range lay.items {
			a.loss += opts[a.option[g][i]].loss
		}
	}
	return a
}

// lowerHull returns the indices of the points of pts on their lower convex
// hull in (cost, loss), by increasing cost and decreasing loss: the points
// a Lagrangian allocation can choose. Of equal points the first is kept.
func lowerHull(pts []point) []int {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		pa, pb := pts[idx[a]], pts[idx[b]]
		if pa.cost != pb.cost {
			return pa.cost < pb.cost
		}
		return pa.loss < pb.loss
	})
	// Drop dominated points: more cost for no less loss.
	var front []int
	for _, i := range idx {
		if n := len(front); n > 0 {
			last := pts[front[n-1]]
			if pts[i].loss >= last.loss || pts[i].cost == last.cost {
				continue
			}
		}
		front = append(front, i)
	}
	var hull []int
	for _, i := range front {
		o := pts[i]
		for len(hull) >= 2 {
			a, b := pts[hull[len(hull)-2]], pts[hull[len(hull)-1]]
			// b is on or above the chord a–o: not a vertex of the lower hull.
			cross := float64(b.cost-a.cost)*(o.loss-a.loss) - (b.loss-a.loss)*float64(o.cost-a.cost)
			if cross > 0 {
				break
			}
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, i)
	}
	return slices.Clip(hull)
}
