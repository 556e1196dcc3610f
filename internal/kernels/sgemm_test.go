package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// unitRoundoff is the float32 unit roundoff u = 2⁻²⁴.
const unitRoundoff = 1.0 / (1 << 24)

// sentinel fills the parts of C outside the m×n result (the stride padding)
// so that stray writes are detected.
const sentinel = float32(-12345.5)

// gemmCase is one Sgemm call of the conformance suite.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra stride beyond the row length of every matrix
}

func (tc gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s/m=%d,n=%d,k=%d/alpha=%g,beta=%g/pad=%d", t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

// operands returns random A, B and C for the case with their strides. gen
// draws one element.
func (tc gemmCase) operands(gen func() float32) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	fill := func(rows, cols int) ([]float32, int) {
		ld := cols + tc.pad
		s := make([]float32, rows*ld)
		for i := range rows {
			for j := range ld {
				if j < cols {
					s[i*ld+j] = gen()
				} else {
					s[i*ld+j] = sentinel
				}
			}
		}
		return s, max(ld, 1)
	}
	a, lda = fill(ar, ac)
	b, ldb = fill(br, bc)
	c, ldc = fill(tc.m, tc.n)
	if tc.beta == 0 {
		// C must be ignored when beta is zero, NaNs included.
		for i := range tc.m {
			for j := range tc.n {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	return a, lda, b, ldb, c, ldc
}

// referenceGemm returns alpha*op(A)*op(B) + beta*C computed in float64, and
// for every element the magnitude Σ_p |alpha·A(i,p)·B(p,j)| + |beta·C(i,j)|
// that scales its rounding error.
func referenceGemm(tc gemmCase, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (want, mag []float64) {
	at := func(i, p int) float64 {
		if tc.transA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if tc.transB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	want = make([]float64, tc.m*tc.n)
	mag = make([]float64, tc.m*tc.n)
	alpha, beta := float64(tc.alpha), float64(tc.beta)
	for i := range tc.m {
		for j := range tc.n {
			var s, sa float64
			for p := range tc.k {
				t := at(i, p) * bt(p, j)
				s += t
				sa += math.Abs(t)
			}
			w, wm := alpha*s, math.Abs(alpha)*sa
			if beta != 0 {
				cv := float64(c[i*ldc+j])
				w += beta * cv
				wm += math.Abs(beta * cv)
			}
			want[i*tc.n+j] = w
			mag[i*tc.n+j] = wm
		}
	}
	return want, mag
}

// checkResult compares C with the reference. Element (i, j) may differ by at
// most tol(mag(i,j)); the stride padding of C must still hold sentinel.
func checkResult(t *testing.T, tc gemmCase, c []float32, ldc int, want, mag []float64, tol func(mag float64) float64) {
	t.Helper()
	bad := 0
	for i := range tc.m {
		for j := range ldc {
			got := c[i*ldc+j]
			if j >= tc.n {
				if got != sentinel && bad < 5 {
					t.Errorf("C(%d,%d) in stride padding overwritten: %g", i, j, got)
					bad++
				}
				continue
			}
			w, lim := want[i*tc.n+j], tol(mag[i*tc.n+j])
			if d := math.Abs(float64(got) - w); !(d <= lim) && bad < 5 {
				t.Errorf("C(%d,%d) = %g, want %g (|diff| %.3g > tolerance %.3g)", i, j, got, w, d, lim)
				bad++
			}
		}
	}
	if bad > 0 {
		t.FailNow()
	}
}

// testKernels returns every micro-kernel supported here, each also in a copy
// with tiny cache blocks so that small shapes cross every mc, kc and nc block
// boundary (and the beta = 1 continuation over k blocks) and B is always
// packed, where the original reads short bands of B in place.
func testKernels() []*microKernel {
	var ks []*microKernel
	for _, k := range supportedKernels() {
		small := *k
		small.name += "-smallblocks"
		small.mc, small.kc, small.nc = 2*k.mr, 5, 2*k.nr
		small.directBMaxTiles = 0
		ks = append(ks, k, &small)
	}
	return ks
}

// conformanceShapes are non-square (m, n, k) triples around the register tile
// sizes of every kernel (4, 6, 12, 16, 32), the edge sizes 1, 7, 17, 33,
// 129, and single rows and columns of C (the matrix-vector path).
var conformanceShapes = [][3]int{
	{1, 1, 1}, {1, 7, 17}, {7, 1, 33}, {17, 33, 1}, {33, 17, 7},
	{129, 7, 17}, {7, 129, 33}, {17, 33, 129}, {33, 129, 1}, {129, 17, 129},
	{12, 32, 16}, {13, 33, 15}, {11, 31, 64}, {24, 64, 3}, {25, 65, 9},
	{6, 16, 8}, {5, 15, 9}, {50, 48, 40}, {97, 70, 300}, {40, 100, 257},
	{1, 200, 300}, {150, 1, 260}, {2, 90, 50}, {90, 2, 50},
}

// TestSgemmConformance runs every implementation path on random non-square
// shapes, all transpose combinations, several alpha/beta pairs and strides
// longer than the rows, against a float64 reference. (These products are
// below parallelMinFlops and run on one goroutine whatever the thread count;
// TestSgemmExact covers products split across goroutines.)
//
// Tolerance: with uniformly random data the rounding error of a length-k
// float32 dot product grows like √k·u relative to Σ|a·b| (the probabilistic
// bound of Higham & Mary, 2019); the deterministic worst case is k·u. We
// allow (√k+2)·u·(Σ_p|α·A·B| + |β·C|), which leaves a margin of more than 10×
// over the errors observed while remaining far below the size of one
// dropped or repeated term (which TestSgemmExact detects exactly).
func TestSgemmConformance(t *testing.T) {
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {0.75, 0}, {2, -1}}
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() float32 { return float32(rng.Float64()*2 - 1) }
	for _, kern := range testKernels() {
		t.Run(kern.name, func(t *testing.T) {
			for si, sh := range conformanceShapes {
				for tr := range 4 {
					ab := scalars[(si+tr)%len(scalars)]
					tc := gemmCase{
						transA: tr&1 != 0, transB: tr&2 != 0,
						m: sh[0], n: sh[1], k: sh[2],
						alpha: ab[0], beta: ab[1],
						pad: (si + tr) % 3 * 5,
					}
					threads := 1 + (si+tr)%3
					t.Run(fmt.Sprintf("%v/threads=%d", tc, threads), func(t *testing.T) {
						a, lda, b, ldb, c, ldc := tc.operands(gen)
						want, mag := referenceGemm(tc, a, lda, b, ldb, c, ldc)
						Options{Threads: threads, kern: kern}.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
						tol := (math.Sqrt(float64(tc.k)) + 2) * unitRoundoff
						checkResult(t, tc, c, ldc, want, mag, func(m float64) float64 { return tol * m })
					})
				}
			}
		})
	}
}

// TestSgemmExact uses small integers, for which every product and partial
// sum is exactly representable in float32 (|sum| < 2²⁴), so every path must
// reproduce the reference exactly: a dropped, repeated or misplaced term
// cannot hide inside a rounding tolerance. The shapes include k far larger
// than any cache block, sizes that are not multiples of any tile, and
// products large enough to be split across 2 or 3 goroutines by rows (tall C)
// and by columns (wide C).
func TestSgemmExact(t *testing.T) {
	shapes := [][3]int{
		{67, 45, 1000}, {300, 37, 70}, {29, 301, 530}, {130, 131, 129},
		{611, 40, 190}, {40, 700, 170}, {130, 128, 300},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	gen := func() float32 { return float32(rng.IntN(7) - 3) }
	for i, sh := range shapes {
		for tr := range 4 {
			tc := gemmCase{
				transA: tr&1 != 0, transB: tr&2 != 0,
				m: sh[0], n: sh[1], k: sh[2],
				alpha: 2, beta: []float32{0, 1, -0.5}[(i+tr)%3],
				pad: 3,
			}
			a, lda, b, ldb, c0, ldc := tc.operands(gen)
			want, mag := referenceGemm(tc, a, lda, b, ldb, c0, ldc)
			threads := 2 + (i+tr)%2
			for _, kern := range testKernels() {
				t.Run(fmt.Sprintf("%s/%v/threads=%d", kern.name, tc, threads), func(t *testing.T) {
					c := append([]float32(nil), c0...)
					Options{Threads: threads, kern: kern}.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
					checkResult(t, tc, c, ldc, want, mag, func(float64) float64 { return 0 })
				})
			}
		}
	}
}

// TestSgemmDegenerate covers the quick-return paths: empty dimensions, k = 0
// and alpha = 0 (C scaled by beta, A and B never read).
func TestSgemmDegenerate(t *testing.T) {
	tests := []struct {
		name        string
		m, n, k     int
		alpha, beta float32
		want        float32 // every element of the 2×3 C, initially 4
	}{
		{"k=0,beta=0", 2, 3, 0, 1, 0, 0},
		{"k=0,beta=0.5", 2, 3, 0, 1, 0.5, 2},
		{"alpha=0,beta=1", 2, 3, 5, 0, 1, 4},
		{"alpha=0,beta=-1", 2, 3, 5, 0, -1, -4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := []float32{4, 4, 4, 4, 4, 4}
			// A and B are NaN: they must not be read.
			a := make([]float32, tt.m*max(tt.k, 1))
			b := make([]float32, max(tt.k, 1)*tt.n)
			for i := range a {
				a[i] = float32(math.NaN())
			}
			for i := range b {
				b[i] = float32(math.NaN())
			}
			Sgemm(false, false, tt.m, tt.n, tt.k, tt.alpha, a, max(tt.k, 1), b, tt.n, tt.beta, c, tt.n)
			for i, v := range c {
				if v != tt.want {
					t.Fatalf("c[%d] = %g, want %g", i, v, tt.want)
				}
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		Sgemm(false, false, 0, 0, 3, 1, nil, 3, nil, 1, 0, nil, 1)
		Sgemm(true, true, 3, 0, 2, 1, make([]float32, 6), 3, nil, 2, 0, nil, 1)
	})
}

// TestSgemmPanics checks that malformed arguments are rejected before any
// memory is touched.
func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 6)
	b := make([]float32, 6)
	c := make([]float32, 4)
	tests := []struct {
		name string
		call func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) }},
		{"lda too small", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }},
		{"transposed lda too small", func() { Sgemm(true, false, 2, 2, 3, 1, a, 1, b, 2, 0, c, 2) }},
		{"ldb too small", func() { Sgemm(false, true, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2) }},
		{"ldc too small", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1) }},
		{"short A", func() { Sgemm(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2) }},
		{"short B", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b[:5], 2, 0, c, 2) }},
		{"short C", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.call()
		})
	}
}

// TestPartition checks how products are split across goroutines: bands must
// tile the split dimension exactly, start on register-tile boundaries, number
// at most the thread count, and follow the documented choice of dimension.
func TestPartition(t *testing.T) {
	kern := &microKernel{name: "test", mr: 12, nr: 32}
	tests := []struct {
		m, n, k, threads int
		wantRows         bool
		wantBands        int
	}{
		{8192, 128, 128, 2, true, 2},  // tall: rows
		{128, 8192, 128, 2, false, 2}, // wide: columns
		{128, 128, 8192, 2, false, 2}, // 6 of 11 row tiles vs 2 of 4 column tiles: columns
		{344, 128, 8192, 2, true, 2},  // 15 of 29 row tiles vs 2 of 4 column tiles: too close
		{140, 128, 8192, 2, true, 2},  // 6 of 12 row tiles vs 2 of 4 column tiles: equal
		{8192, 344, 128, 3, true, 3},
		{256, 256, 16, 2, true, 1},   // below parallelMinFlops
		{8192, 128, 128, 1, true, 1}, // one thread
		{8192, 128, 128, 0, true, 1}, // a non-positive count is one thread here
		{30, 20000, 16, 4, false, 4},
		{13, 33, 40000, 8, false, 2}, // only two row tiles and two column tiles
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("m=%d,n=%d,k=%d,threads=%d", tt.m, tt.n, tt.k, tt.threads), func(t *testing.T) {
			g := &gemm{m: tt.m, n: tt.n, k: tt.k, kern: kern}
			p := g.partition(tt.threads)
			if p.rows != tt.wantRows || p.bands != tt.wantBands {
				t.Fatalf("rows=%v with %d bands, want %v with %d", p.rows, p.bands, tt.wantRows, tt.wantBands)
			}
			rows := p.rows
			cuts := make([]int, p.bands+1)
			for i := range cuts {
				cuts[i] = p.cut(i)
			}
			dim, unit := tt.n, kern.nr
			if rows {
				dim, unit = tt.m, kern.mr
			}
			if cuts[0] != 0 || cuts[len(cuts)-1] != dim {
				t.Fatalf("cuts %v do not span [0, %d)", cuts, dim)
			}
			for i := 1; i < len(cuts); i++ {
				if cuts[i] <= cuts[i-1] || (cuts[i] != dim && cuts[i]%unit != 0) {
					t.Fatalf("cuts %v: band %d empty or not aligned to %d", cuts, i-1, unit)
				}
			}
		})
	}
}
