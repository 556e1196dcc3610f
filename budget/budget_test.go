package budget

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// bruteForce returns the smallest loss over every rank assignment (ranks up
// to maxRank, or dense) that fits in floats.
func bruteForce(mats []Matrix, floats int64) float64 {
	best := math.Inf(1)
	var rec func(i int, left int64, loss float64)
	rec = func(i int, left int64, loss float64) {
		if i == len(mats) {
			best = min(best, loss)
			return
		}
		m := mats[i]
		opts := []Choice{{Dense: true}}
		for r := 0; r <= m.maxRank(); r++ {
			opts = append(opts, Choice{Rank: r})
		}
		for _, c := range opts {
			if c.Cost(m) <= left {
				rec(i+1, left-c.Cost(m), loss+c.Loss(m))
			}
		}
	}
	rec(0, floats, 0)
	return best
}

func randomSpectrum(rng *rand.Rand, k int) []float64 {
	s := make([]float64, k)
	v := 1 + rng.Float64()
	for i := range s {
		s[i] = v
		v *= 0.3 + 0.6*rng.Float64()
	}
	return s
}

func TestAllocateMatchesBruteForceOnEqualShapes(t *testing.T) {
	// With equal shapes every rank step costs the same, so taking the
	// largest remaining σ² first is optimal as long as no dense jump fits.
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		t.Run("", func(t *testing.T) {
			mats := make([]Matrix, 3)
			for i := range mats {
				mats[i] = Matrix{Rows: 12, Cols: 12, Spectrum: randomSpectrum(rng, 12), Weight: 0.5 + rng.Float64()}
			}
			floats := int64(24 * (1 + trial%5)) // below one dense matrix's cost of 144
			ch, spent, loss, err := Allocate(mats, floats)
			if err != nil {
				t.Fatal(err)
			}
			if spent > floats {
				t.Fatalf("spent %d of %d", spent, floats)
			}
			var sum float64
			for i, c := range ch {
				sum += c.Loss(mats[i])
			}
			if math.Abs(sum-loss) > 1e-12*(1+loss) {
				t.Errorf("reported loss %g, choices lose %g", loss, sum)
			}
			if want := bruteForce(mats, floats); math.Abs(loss-want) > 1e-12*(1+want) {
				t.Errorf("loss %g, optimum %g", loss, want)
			}
		})
	}
}

func TestAllocateNearOptimalOnMixedShapes(t *testing.T) {
	// Greedy knapsack is not exact with mixed costs: it may leave up to one
	// purchase unspent. Its loss must be no worse than the optimum of a
	// budget smaller by the largest matrix (64 floats), and it must never
	// beat the optimum of the full budget.
	const largest = 64
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := [][2]int{{4, 8}, {8, 8}, {6, 3}}
	for range 20 {
		t.Run("", func(t *testing.T) {
			var mats []Matrix
			for _, sh := range shapes {
				mats = append(mats, Matrix{Rows: sh[0], Cols: sh[1], Spectrum: randomSpectrum(rng, min(sh[0], sh[1]))})
			}
			floats := int64(20 + rng.IntN(100))
			_, spent, loss, err := Allocate(mats, floats)
			if err != nil {
				t.Fatal(err)
			}
			if spent > floats {
				t.Fatalf("spent %d of %d", spent, floats)
			}
			if opt := bruteForce(mats, floats); loss < opt*(1-1e-12) {
				t.Errorf("loss %g below the optimum %g", loss, opt)
			}
			if worse := bruteForce(mats, max(0, floats-largest)); loss > worse*(1+1e-12) {
				t.Errorf("loss %g, optimum with %d fewer floats %g", loss, largest, worse)
			}
		})
	}
}

func TestAllocateGoesDenseInsteadOfLargeFactors(t *testing.T) {
	// A 4×4 matrix: rank 1 costs 8, rank 2 would cost 16 = dense, so the
	// second purchase must be the dense jump (cost 8 more), never rank 2.
	m := Matrix{Rows: 4, Cols: 4, Spectrum: []float64{1, 1, 1, 1}}
	for _, tc := range []struct {
		floats int64
		want   Choice
	}{
		{7, Choice{}},
		{8, Choice{Rank: 1}},
		{15, Choice{Rank: 1}},
		{16, Choice{Dense: true}},
		{100, Choice{Dense: true}},
	} {
		ch, _, _, err := Allocate([]Matrix{m}, tc.floats)
		if err != nil {
			t.Fatal(err)
		}
		if ch[0] != tc.want {
			t.Errorf("budget %d: got %+v, want %+v", tc.floats, ch[0], tc.want)
		}
	}
}

func TestChoosePicksTheCheaperLayout(t *testing.T) {
	// Group a: a shared base of 20 floats makes its two increments small
	// (σ 0.1); without it they are large (σ 1). Group b has one layout. The
	// base pays when its increments then need few floats.
	inc := func(s float64) Matrix { return Matrix{Rows: 4, Cols: 4, Spectrum: []float64{s, s / 2, s / 4, s / 8}} }
	groups := []Group{
		{Name: "a", Layouts: []Layout{
			{Name: "zero", Mats: []Matrix{inc(1), inc(1)}},
			{Name: "mean", Fixed: 16, Mats: []Matrix{inc(0.1), inc(0.1)}},
		}},
		{Name: "b", Layouts: []Layout{{Name: "zero", Mats: []Matrix{inc(1)}}}},
	}
	p, err := Choose(groups, 40)
	if err != nil {
		t.Fatal(err)
	}
	if p.Layout[0] != 1 {
		t.Errorf("group a layout %d, want 1 (shared base)", p.Layout[0])
	}
	if p.Floats > 40 {
		t.Errorf("plan stores %d floats, budget 40", p.Floats)
	}
	for _, lay := range []int{0, 1} {
		q, err := evaluate(groups, []int{lay, 0}, 40)
		if err != nil {
			t.Fatal(err)
		}
		if q.Loss < p.Loss {
			t.Errorf("layout %d loses %g, chosen plan %g", lay, q.Loss, p.Loss)
		}
	}
	if _, err := Choose(groups, 10); err != nil {
		t.Errorf("budget 10 fits the zero layouts: %v", err)
	}
	groups[1].Layouts[0].Fixed = 50
	if _, err := Choose(groups, 40); !errors.Is(err, ErrOverBudget) {
		t.Errorf("got %v, want ErrOverBudget", err)
	}
}

func TestAllocateRejectsBadInput(t *testing.T) {
	for name, m := range map[string]Matrix{
		"empty":      {Rows: 0, Cols: 3},
		"increasing": {Rows: 2, Cols: 2, Spectrum: []float64{1, 2}},
		"negative":   {Rows: 2, Cols: 2, Spectrum: []float64{1, -1}},
		"nan weight": {Rows: 2, Cols: 2, Weight: math.NaN()},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := Allocate([]Matrix{m}, 10); err == nil {
				t.Error("no error")
			}
		})
	}
}
