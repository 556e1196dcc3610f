package svd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// benchMatrix returns an m×n matrix with a decaying spectrum, like the
// difference of two trained weight matrices: Σ_{i<k} 0.98^i x_i y_iᵀ over
// k = min(m, n, 512) random unit-scale directions, plus Gaussian noise of
// relative size 1e-3.
func benchMatrix(m, n int) *mat.Dense {
	rng := rand.New(rand.NewPCG(uint64(m), uint64(n)))
	k := min(m, n, 512)
	x := gaussian(rng, m, k)
	y := gaussian(rng, k, n)
	for i := range k {
		scale := math.Pow(0.98, float64(i)) / math.Sqrt(float64(m*n))
		for j := range m {
			x.Set(j, i, x.At(j, i)*scale)
		}
	}
	a := gaussian(rng, m, n)
	a.Scale(1e-3/math.Sqrt(float64(m*n)), a)
	var sig mat.Dense
	sig.Mul(x, y)
	a.Add(a, &sig)
	return a
}

var benchShapes = []struct{ m, n, r int }{
	{m: 344, n: 128, r: 32},
	{m: 2048, n: 8192, r: 64},
}

func benchmarkMethod(b *testing.B, method Method) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d_r%d", s.m, s.n, s.r), func(b *testing.B) {
			a := benchMatrix(s.m, s.n)
			opt := Options{Method: method, Rank: s.r, Seed: 1}
			b.ResetTimer()
			var f *Factors
			for b.Loop() {
				var err error
				if f, err = Factorize(a, opt); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			e, err := RelativeError(a, f)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(e, "relerr")
		})
	}
}

// BenchmarkExact measures the exact thin SVD. The 2048×8192 case takes
// minutes on two cores; run it with -benchtime=1x.
func BenchmarkExact(b *testing.B) { benchmarkMethod(b, Exact) }

// BenchmarkRandomized measures the randomized SVD with default oversampling
// and power iterations.
func BenchmarkRandomized(b *testing.B) { benchmarkMethod(b, Randomized) }

// BenchmarkRandomizedFloat32 measures FactorizeFloat32, the randomized
// method with its products on the float32 SGEMM.
func BenchmarkRandomizedFloat32(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d_r%d", s.m, s.n, s.r), func(b *testing.B) {
			a := benchMatrix(s.m, s.n)
			a32 := to32(a)
			opt := Options{Method: Randomized, Rank: s.r, Seed: 1}
			var f *Factors
			for b.Loop() {
				var err error
				if f, err = FactorizeFloat32(a32, s.m, s.n, opt); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			e, err := RelativeError(a, f)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(e, "relerr")
		})
	}
}
