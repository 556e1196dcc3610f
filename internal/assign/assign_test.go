package assign

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// bruteMax returns the best total over every injective map of rows to
// columns.
func bruteMax(s []float64, n, m int) float64 {
	best := math.Inf(-1)
	used := make([]bool, m)
	var rec func(i int, acc float64)
	rec = func(i int, acc float64) {
		if i == n {
			best = max(best, acc)
			return
		}
		for j := range m {
			if !used[j] {
				used[j] = true
				rec(i+1, acc+s[i*m+j])
				used[j] = false
			}
		}
	}
	rec(0, 0)
	return best
}

func total(s []float64, m int, col []int) float64 {
	var t float64
	for i, j := range col {
		t += s[i*m+j]
	}
	return t
}

func distinct(t *testing.T, col []int, m int) {
	t.Helper()
	seen := make([]bool, m)
	for i, j := range col {
		if j < 0 || j >= m || seen[j] {
			t.Fatalf("row %d: column %d out of range or repeated in %v", i, j, col)
		}
		seen[j] = true
	}
}

func TestMaxAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		n, m int
		gen  func() float64
	}{
		{"square 1", 1, 1, rng.NormFloat64},
		{"square 5", 5, 5, rng.NormFloat64},
		{"square 7", 7, 7, rng.NormFloat64},
		{"wide 3x6", 3, 6, rng.NormFloat64},
		{"wide 5x7", 5, 7, rng.NormFloat64},
		{"ties", 6, 6, func() float64 { return float64(rng.IntN(3)) }},
		{"negative", 6, 6, func() float64 { return -100 - rng.Float64() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 {
				s := make([]float64, tc.n*tc.m)
				for i := range s {
					s[i] = tc.gen()
				}
				col, err := Max(s, tc.n, tc.m)
				if err != nil {
					t.Fatal(err)
				}
				distinct(t, col, tc.m)
				if got, want := total(s, tc.m, col), bruteMax(s, tc.n, tc.m); math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
					t.Fatalf("total %v, optimum %v", got, want)
				}
			}
		})
	}
}

// TestPlantedPermutation checks that both solvers recover a permutation
// planted in a noisy similarity matrix.
func TestPlantedPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 300
	perm := rng.Perm(n)
	s := make([]float64, n*n)
	for i := range s {
		s[i] = 0.3 * rng.NormFloat64()
	}
	for i, j := range perm {
		s[i*n+j] += 2
	}
	for name, solve := range map[string]func([]float64, int, int) ([]int, error){"Max": Max, "Greedy": Greedy} {
		col, err := solve(s, n, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range col {
			if col[i] != perm[i] {
				t.Fatalf("%s: row %d → %d, planted %d", name, i, col[i], perm[i])
			}
		}
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		name string
		s    []float64
		n, m int
	}{
		{"tall", make([]float64, 6), 3, 2},
		{"short data", make([]float64, 5), 2, 3},
		{"NaN", []float64{1, math.NaN(), 0, 1}, 2, 2},
		{"Inf", []float64{1, math.Inf(1), 0, 1}, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Max(tc.s, tc.n, tc.m); err == nil {
				t.Fatal("no error")
			}
			if _, err := Greedy(tc.s, tc.n, tc.m); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := Max(make([]float64, 6), 3, 2); !errors.Is(err, ErrShape) {
		t.Fatalf("tall: %v, want ErrShape", err)
	}
}

// TestExactTime measures the exact solver on a random matrix; it runs only
// when asked (go test -run ExactTime -v) with ASSIGN_N set.
func TestExactTime(t *testing.T) {
	if testing.Short() || !testing.Verbose() {
		t.Skip("timing only")
	}
	n, _ := strconv.Atoi(os.Getenv("ASSIGN_N"))
	if n <= 0 {
		t.Skip("set ASSIGN_N")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	s := make([]float64, n*n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	start := time.Now()
	if _, err := Max(s, n, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("n=%d: %v", n, time.Since(start))
}
