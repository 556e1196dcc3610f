// Package budget spends a stored-parameter budget on low-rank increments:
// it chooses each matrix's rank (or a dense increment) and, per group of
// matrices, one of several layouts (such as a shared base or none), so that
// the summed truncation loss is as small as the budget allows.
package budget

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
)

// Matrix is one increment to be stored: a rank-r factorisation costs
// r·(Rows+Cols) floats and loses Weight·Σ_{i>r} Spectrum[i]², a dense one
// costs Rows·Cols and loses nothing.
type Matrix struct {
	Rows, Cols int
	// Spectrum holds the singular values of the increment (plain or
	// whitened) in non-increasing order.
	Spectrum []float64
	// Weight scales the loss, e.g. 1/‖W‖² for a relative error; 0 means 1.
	Weight float64
}

// Choice is the stored form of one Matrix.
type Choice struct {
	// Rank is the factor rank; it is meaningless when Dense is set.
	Rank  int
	Dense bool
}

// Cost returns the stored floats of c for m.
func (c Choice) Cost(m Matrix) int64 {
	if c.Dense {
		return int64(m.Rows) * int64(m.Cols)
	}
	return int64(c.Rank) * int64(m.Rows+m.Cols)
}

// Loss returns the weighted truncation loss of c for m.
func (c Choice) Loss(m Matrix) float64 {
	if c.Dense {
		return 0
	}
	return m.weight() * tail(m.Spectrum, c.Rank)
}

func (m Matrix) weight() float64 {
	if m.Weight == 0 {
		return 1
	}
	return m.Weight
}

// maxRank is the largest rank whose factors are smaller than the dense
// matrix: r·(m+n) < m·n.
func (m Matrix) maxRank() int {
	r := (m.Rows*m.Cols - 1) / (m.Rows + m.Cols)
	return min(r, len(m.Spectrum))
}

func tail(s []float64, r int) float64 {
	var t float64
	for _, v := range s[min(r, len(s)):] {
		t += v * v
	}
	return t
}

// step is the best next purchase for one matrix: one more rank, or the
// jump to a dense increment, whichever saves more loss per float.
type step struct {
	i     int
	cost  int64
	gain  float64
	dense bool
	// alt is the one-rank step to take instead when a preferred dense jump
	// does not fit.
	alt *step
}

func (s step) ratio() float64 { return s.gain / float64(s.cost) }

type queue []step

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].ratio() > q[j].ratio() }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(step)) }
func (q *queue) Pop() any {
	old := *q
	s := old[len(old)-1]
	*q = old[:len(old)-1]
	return s
}

// next returns the best step for matrix i at rank r, or false when it is
// already dense or nothing is left to gain.
func next(mats []Matrix, i, r int) (step, bool) {
	m := mats[i]
	w := m.weight()
	rest := w * tail(m.Spectrum, r)
	if rest <= 0 {
		return step{}, false
	}
	dense := step{i: i, cost: int64(m.Rows)*int64(m.Cols) - int64(r)*int64(m.Rows+m.Cols), gain: rest, dense: true}
	if r >= m.maxRank() {
		return dense, true
	}
	one := step{i: i, cost: int64(m.Rows + m.Cols), gain: w * m.Spectrum[r] * m.Spectrum[r]}
	if dense.ratio() > one.ratio() {
		dense.alt = &one
		return dense, true
	}
	return one, true
}

// Allocate spends at most floats stored values on mats, greedily by loss
// saved per float: each matrix grows one rank at a time, or jumps to a
// dense increment when that saves more per float than the next rank (so a
// matrix never holds factors at least as large as itself). A dense jump that
// does not fit falls back to the next rank; any other step that does not fit
// is dropped and cheaper steps of other matrices continue. It
// returns the choices, their total cost and total loss.
func Allocate(mats []Matrix, floats int64) ([]Choice, int64, float64, error) {
	if floats < 0 {
		return nil, 0, 0, fmt.Errorf("budget: negative budget %d", floats)
	}
	for i, m := range mats {
		if m.Rows < 1 || m.Cols < 1 {
			return nil, 0, 0, fmt.Errorf("budget: matrix %d is %d×%d", i, m.Rows, m.Cols)
		}
		if math.IsNaN(m.Weight) || m.Weight < 0 {
			return nil, 0, 0, fmt.Errorf("budget: matrix %d has weight %v", i, m.Weight)
		}
		for j, s := range m.Spectrum {
			if math.IsNaN(s) || s < 0 || (j > 0 && s > m.Spectrum[j-1]) {
				return nil, 0, 0, fmt.Errorf("budget: matrix %d: spectrum is not non-negative and non-increasing at %d", i, j)
			}
		}
	}
	out := make([]Choice, len(mats))
	q := &queue{}
	for i := range mats {
		if s, ok := next(mats, i, 0); ok {
			*q = append(*q, s)
		}
	}
	heap.Init(q)
	var spent int64
	for q.Len() > 0 {
		s := heap.Pop(q).(step)
		if spent+s.cost > floats {
			if s.alt != nil {
				heap.Push(q, *s.alt)
			}
			continue
		}
		spent += s.cost
		if s.dense {
			out[s.i] = Choice{Dense: true}
			continue
		}
		out[s.i].Rank++
		if n, ok := next(mats, s.i, out[s.i].Rank); ok {
			heap.Push(q, n)
		}
	}
	var loss float64
	for i, c := range out {
		loss += c.Loss(mats[i])
	}
	return out, spent, loss, nil
}

// Layout is one way to store a group: Fixed floats stored whatever the
// ranks (shared bases, 1-D tensors) and the increments to allocate.
type Layout struct {
	Name  string
	Fixed int64
	Mats  []Matrix
}

// Group is a set of matrices (for instance one tensor kind across layers)
// with alternative layouts, of which exactly one is used.
type Group struct {
	Name    string
	Layouts []Layout
}

// Plan is the result of Choose.
type Plan struct {
	// Layout[g] is the index of the layout chosen for group g.
	Layout []int
	// Choices[g][i] is the stored form of matrix i of that layout.
	Choices [][]Choice
	// Floats is the total stored floats (fixed and increments), Loss the
	// summed weighted truncation loss.
	Floats int64
	Loss   float64
}

// ErrOverBudget reports a budget below the fixed floats of every layout.
var ErrOverBudget = errors.New("budget: the fixed parts alone exceed the budget")

// Choose picks one layout per group and allocates floats (the whole budget,
// fixed parts included) across the chosen layouts' matrices with Allocate.
// The layouts are chosen by coordinate descent from the cheapest fixed
// layout of each group: each group in turn takes the layout that lowers the
// total loss most, until no change helps.
func Choose(groups []Group, floats int64) (*Plan, error) {
	sel := make([]int, len(groups))
	for g, gr := range groups {
		if len(gr.Layouts) == 0 {
			return nil, fmt.Errorf("budget: group %q has no layout", gr.Name)
		}
		for j, l := range gr.Layouts {
			if l.Fixed < gr.Layouts[sel[g]].Fixed {
				sel[g] = j
			}
		}
	}
	best, err := evaluate(groups, sel, floats)
	if err != nil {
		return nil, err
	}
	for changed := true; changed; {
		changed = false
		for g, gr := range groups {
			for j := range gr.Layouts {
				if j == best.Layout[g] {
					continue
				}
				try := append([]int(nil), best.Layout...)
				try[g] = j
				p, err := evaluate(groups, try, floats)
				if errors.Is(err, ErrOverBudget) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if p.Loss < best.Loss {
					best, changed = p, true
				}
			}
		}
	}
	return best, nil
}

// evaluate allocates the budget for one selection of layouts.
func evaluate(groups []Group, sel []int, floats int64) (*Plan, error) {
	var fixed int64
	var mats []Matrix
	for g, j := range sel {
		l := groups[g].Layouts[j]
		fixed += l.Fixed
		mats = append(mats, l.Mats...)
	}
	if fixed > floats {
		return nil, fmt.Errorf("%w (%d fixed, budget %d)", ErrOverBudget, fixed, floats)
	}
	ch, spent, loss, err := Allocate(mats, floats-fixed)
	if err != nil {
		return nil, err
	}
	p := &Plan{Layout: append([]int(nil), sel...), Floats: fixed + spent, Loss: loss}
	for g, j := range sel {
		n := len(groups[g].Layouts[j].Mats)
		p.Choices = append(p.Choices, ch[:n:n])
		ch = ch[n:]
	}
	return p, nil
}
