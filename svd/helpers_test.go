package svd

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// gaussian returns an m×n matrix of standard normal entries.
func gaussian(rng *rand.Rand, m, n int) *mat.Dense {
	d := mat.NewDense(m, n, nil)
	for i := range m {
		row := d.RawRowView(i)
		for j := range row {
			row[j] = rng.NormFloat64()
		}
	}
	return d
}

// orthonormalColumns returns an m×k matrix with random orthonormal columns.
func orthonormalColumns(rng *rand.Rand, m, k int) *mat.Dense {
	q := gaussian(rng, m, k)
	orthonormalize(q)
	return q
}

// withSpectrum returns U·diag(s)·Vᵀ (m×n) for random orthonormal U and V,
// so that its singular values are exactly |s| (up to rounding).
func withSpectrum(rng *rand.Rand, m, n int, s []float64) *mat.Dense {
	k := len(s)
	u := orthonormalColumns(rng, m, k)
	v := orthonormalColumns(rng, n, k)
	for j, sj := range s {
		for i := range m {
			u.Set(i, j, u.At(i, j)*sj)
		}
	}
	var d mat.Dense
	d.Mul(u, v.T())
	return &d
}

// decaying returns k singular values s_i = base^i.
func decaying(k int, base float64) []float64 {
	s := make([]float64, k)
	for i := range s {
		s[i] = math.Pow(base, float64(i))
	}
	return s
}

// naiveProduct returns b·a computed with a plain triple loop.
func naiveProduct(b, a mat.Matrix) [][]float64 {
	m, k := b.Dims()
	_, n := a.Dims()
	out := make([][]float64, m)
	for i := range m {
		out[i] = make([]float64, n)
		for j := range n {
			var sum float64
			for l := range k {
				sum += b.At(i, l) * a.At(l, j)
			}
			out[i][j] = sum
		}
	}
	return out
}

// naiveRelativeError returns ‖a − B·A‖_F/‖a‖_F with the product formed by
// naiveProduct; for rank 0 the approximation is the zero matrix.
func naiveRelativeError(a mat.Matrix, f *Factors) float64 {
	m, n := a.Dims()
	var approx [][]float64
	if f.Rank > 0 {
		approx = naiveProduct(f.B, f.A)
	}
	var norm, res float64
	for i := range m {
		for j := range n {
			v := a.At(i, j)
			norm += v * v
			if approx != nil {
				v -= approx[i][j]
			}
			res += v * v
		}
	}
	return math.Sqrt(res / norm)
}

// referenceValues returns all singular values of a from gonum's SVD with no
// vectors, independent of the code under test.
func referenceValues(t testing.TB, a mat.Matrix) []float64 {
	t.Helper()
	var f mat.SVD
	if !f.Factorize(a, mat.SVDNone) {
		t.Fatal("reference SVD did not converge")
	}
	return f.Values(nil)
}

// tail returns sqrt(Σ_{i≥r} s_i²).
func tail(s []float64, r int) float64 {
	var sum float64
	for _, v := range s[r:] {
		sum += v * v
	}
	return math.Sqrt(sum)
}

// mustFactorize calls Factorize and fails the test on error.
func mustFactorize(t testing.TB, a mat.Matrix, opt Options) *Factors {
	t.Helper()
	f, err := Factorize(a, opt)
	if err != nil {
		t.Fatalf("Factorize(%+v): %v", opt, err)
	}
	return f
}

// mustRelativeError calls RelativeError and fails the test on error.
func mustRelativeError(t testing.TB, a mat.Matrix, f *Factors) float64 {
	t.Helper()
	e, err := RelativeError(a, f)
	if err != nil {
		t.Fatalf("RelativeError: %v", err)
	}
	return e
}

// checkShapes fails unless f has rank r with B m×r and A r×n.
func checkShapes(t testing.TB, f *Factors, m, n, r int) {
	t.Helper()
	if f.Rank != r || len(f.S) != r {
		t.Fatalf("rank %d with %d values, want %d", f.Rank, len(f.S), r)
	}
	if r == 0 {
		if f.B != nil || f.A != nil {
			t.Fatalf("rank 0 with non-nil factors")
		}
		return
	}
	bm, br := f.B.Dims()
	ar, an := f.A.Dims()
	if bm != m || br != r || ar != r || an != n {
		t.Fatalf("factors %d×%d · %d×%d, want %d×%d · %d×%d", bm, br, ar, an, m, r, r, n)
	}
}
