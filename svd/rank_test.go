package svd

import (
	"fmt"
	"testing"
)

func TestRankForEnergy(t *testing.T) {
	s := []float64{3, 2, 1, 0} // squares 9, 4, 1, 0; total 14
	for _, tc := range []struct {
		name   string
		s      []float64
		total  float64
		energy float64
		want   int
	}{
		{name: "empty", s: nil, total: 1, energy: 0.5, want: 0},
		{name: "zero total", s: []float64{0, 0}, total: 0, energy: 0.9, want: 0},
		{name: "zero energy", s: s, total: 14, energy: 0, want: 0},
		{name: "tiny energy keeps one", s: s, total: 14, energy: 1e-9, want: 1},
		{name: "exact boundary 9/14", s: s, total: 14, energy: 9.0 / 14, want: 1},
		{name: "just above 9/14", s: s, total: 14, energy: 9.0/14 + 1e-12, want: 2},
		{name: "13/14", s: s, total: 14, energy: 13.0 / 14, want: 2},
		{name: "0.99 needs three", s: s, total: 14, energy: 0.99, want: 3},
		{name: "full energy keeps all", s: s, total: 14, energy: 1, want: 4},
		{name: "above one keeps all", s: s, total: 14, energy: 1.5, want: 4},
		{name: "unreachable through rounding", s: []float64{1, 1}, total: 2 * (1 + 1e-15), energy: 1 - 1e-16, want: 2},
		{name: "total larger than values", s: []float64{1, 1}, total: 4, energy: 0.75, want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := RankForEnergy(tc.s, tc.total, tc.energy); got != tc.want {
				t.Errorf("%s: RankForEnergy(%v, %v, %v) = %d, want %d", tc.name, tc.s, tc.total, tc.energy, got, tc.want)
			}
		})
	}
}

func TestDenseIsSmaller(t *testing.T) {
	for _, tc := range []struct {
		m, n, r int
		want    bool
	}{
		{m: 128, n: 344, r: 32, want: false},   // 32·472 = 15104 < 44032
		{m: 128, n: 344, r: 93, want: false},   // 93·472 = 43896 < 44032
		{m: 128, n: 344, r: 94, want: true},    // 94·472 = 44368 ≥ 44032
		{m: 4, n: 4, r: 2, want: true},         // 16 ≥ 16: equal size favours dense
		{m: 2048, n: 8192, r: 64, want: false}, // no overflow at large sizes
		{m: 1 << 30, n: 1 << 30, r: 1 << 29, want: true},
		{m: 10, n: 1, r: 1, want: true},
		{m: 10, n: 10, r: 0, want: false},
	} {
		t.Run(fmt.Sprintf("%dx%d r%d", tc.m, tc.n, tc.r), func(t *testing.T) {
			t.Parallel()
			if got := DenseIsSmaller(tc.m, tc.n, tc.r); got != tc.want {
				t.Errorf("DenseIsSmaller(%d, %d, %d) = %v, want %v", tc.m, tc.n, tc.r, got, tc.want)
			}
		})
	}
}
