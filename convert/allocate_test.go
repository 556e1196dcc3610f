package convert

import (
	"errors"
	"math"
	"testing"
)

func TestLowerHull(t *testing.T) {
	p := func(cost int64, loss float64) point { return point{cost, loss} }
	for _, tc := range []struct {
		name string
		in   []point
		want []int
	}{
		{"one", []point{p(10, 1)}, []int{0}},
		{"dominated dropped", []point{p(10, 1), p(20, 2), p(30, 0.5)}, []int{0, 2}},
		{"above the chord dropped", []point{p(10, 1), p(20, 0.9), p(30, 0)}, []int{0, 2}},
		{"on the chord dropped", []point{p(10, 1), p(20, 0.5), p(30, 0)}, []int{0, 2}},
		{"convex kept, sorted by cost", []point{p(30, 0.1), p(10, 1), p(20, 0.3)}, []int{1, 2, 0}},
		{"equal cost, the smaller loss", []point{p(10, 1), p(10, 0.5)}, []int{1}},
		{"equal points, the first", []point{p(10, 1), p(10, 1)}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lowerHull(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("hull %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("hull %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestAllocate checks allocate on problems small enough that the optimum
// is found by hand (each case says why).
func TestAllocate(t *testing.T) {
	p := func(cost int64, loss float64) point { return point{cost, loss} }
	one := func(items ...[]point) allocGroup { return allocGroup{layouts: []allocLayout{{items: items}}} }
	a := []point{p(0, 1), p(10, 0.2), p(20, 0.1)}
	b := []point{p(0, 1), p(10, 0.6), p(20, 0.3)}
	// shared: layout 0 stores nothing shared, layout 1 a base of 5 that
	// brings each of its two items' rank-0 loss from 1 to 0.3.
	shared := allocGroup{layouts: []allocLayout{
		{items: [][]point{{p(0, 1), p(10, 0)}, {p(0, 1), p(10, 0)}}},
		{fixed: p(5, 0), items: [][]point{{p(0, 0.3), p(10, 0)}, {p(0, 0.3), p(10, 0)}}},
	}}
	for _, tc := range []struct {
		name    string
		groups  []allocGroup
		limit   int64
		layout  []int
		options [][]int
		cost    int64
		loss    float64
	}{
		// 10+10 loses 0.8; 20+0 loses 1.1 and 0+20 1.3.
		{"convex, split", []allocGroup{one(a), one(b)}, 20, []int{0, 0}, [][]int{{1}, {1}}, 20, 0.8},
		// a's first step saves 0.08/unit, b's 0.04, a's second 0.01.
		{"convex, the steepest first", []allocGroup{one(a), one(b)}, 10, []int{0, 0}, [][]int{{1}, {0}}, 10, 1.2},
		{"ample", []allocGroup{one(a), one(b)}, 100, []int{0, 0}, [][]int{{2}, {2}}, 40, 0.4},
		{"nothing to spend", []allocGroup{one(a), one(b)}, 9, []int{0, 0}, [][]int{{0}, {0}}, 0, 2},
		// (10, 0.9) is above the chord (0, 1)–(20, 0): off the hull, so
		// the Lagrangian step leaves the item at 0 and the fill takes it.
		{"non-convex, filled", []allocGroup{one([]point{p(0, 1), p(10, 0.9), p(20, 0)})}, 15, []int{0}, [][]int{{1}}, 10, 0.9},
		// Layout 0 buys one item for 10 (loss 1); layout 1 pays 5 for
		// 0.6 and cannot afford a step.
		{"shared base pays", []allocGroup{shared}, 10, []int{1}, [][]int{{0, 0}}, 5, 0.6},
		// 20 stores both items whole without a base (loss 0).
		{"shared base does not pay", []allocGroup{shared}, 20, []int{0}, [][]int{{1, 1}}, 20, 0},
		// A fixed loss counts: a base with its own rounding loss of 0.7
		// makes layout 1 lose 1.3 > 1.
		{"fixed loss", []allocGroup{{layouts: []allocLayout{shared.layouts[0], {fixed: p(5, 0.7), items: shared.layouts[1].items}}}}, 10, []int{0}, [][]int{{1, 0}}, 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := allocate(tc.groups, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got.cost != tc.cost || math.Abs(got.loss-tc.loss) > 1e-12 {
				t.Errorf("cost %d, loss %g; want %d, %g", got.cost, got.loss, tc.cost, tc.loss)
			}
			for g := range tc.layout {
				if got.layout[g] != tc.layout[g] {
					t.Errorf("group %d: layout %d, want %d", g, got.layout[g], tc.layout[g])
				}
				for i := range tc.options[g] {
					if got.option[g][i] != tc.options[g][i] {
						t.Errorf("group %d item %d: option %d, want %d", g, i, got.option[g][i], tc.options[g][i])
					}
				}
			}
		})
	}
	_, err := allocate([]allocGroup{one([]point{p(7, 1)}), one([]point{p(5, 1), p(9, 0)})}, 11)
	var over errOverBudget
	if !errors.As(err, &over) || over.least != 12 {
		t.Errorf("limit 11 below the least 12: %v", err)
	}
}
