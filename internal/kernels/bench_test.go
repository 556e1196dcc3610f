package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// benchShape is one product measured by the benchmarks.
type benchShape struct {
	transA, transB bool
	m, n, k        int
}

func (s benchShape) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s_m%d_n%d_k%d", t(s.transA), t(s.transB), s.m, s.n, s.k)
}

// benchShapes are the products of a transformer forward and backward pass at
// 8192 tokens (32 sequences of 256) with hidden sizes 64–344: Y = X·Wᵀ (NT),
// dX = dY·W (NN), dW = dYᵀ·X (TN); one attention head (256×16 by 16×256 and
// 256×256 by 256×16); and a large square product.
var benchShapes = []benchShape{
	{false, true, 8192, 64, 128},
	{false, true, 8192, 128, 128},
	{false, true, 8192, 344, 128},
	{false, true, 8192, 128, 344},
	{false, false, 8192, 128, 128},
	{false, false, 8192, 344, 128},
	{false, false, 8192, 128, 344},
	{true, false, 128, 128, 8192},
	{true, false, 344, 128, 8192},
	{true, false, 128, 344, 8192},
	{false, true, 256, 256, 16},
	{false, false, 256, 16, 256},
	{false, false, 2048, 2048, 2048},
}

// benchOperands returns random A, B and C for the shape with tight strides.
func benchOperands(s benchShape) (a []float32, lda int, b []float32, ldb int, c []float32) {
	rng := rand.New(rand.NewPCG(11, 12))
	a = make([]float32, s.m*s.k)
	b = make([]float32, s.k*s.n)
	c = make([]float32, s.m*s.n)
	for i := range a {
		a[i] = float32(rng.Float64() - 0.5)
	}
	for i := range b {
		b[i] = float32(rng.Float64() - 0.5)
	}
	lda, ldb = s.k, s.n
	if s.transA {
		lda = s.m
	}
	if s.transB {
		ldb = s.k
	}
	return a, lda, b, ldb, c
}

// reportGFLOPS reports the rate of a benchmark that ran b.N products of
// 2·m·n·k floating-point operations each: per second of wall time
// (GFLOP/s) and, when cpu0 is the process CPU time at the start of the
// timed loop, per second of CPU time summed over all threads (GFLOP/cpu-s).
// On a machine shared with other work the second figure is the steadier
// measure of per-core efficiency: time spent descheduled does not count.
func reportGFLOPS(b *testing.B, s benchShape, cpu0 time.Duration, cpuOK bool) {
	flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu1, ok := processCPUTime(); ok && cpuOK && cpu1 > cpu0 {
		b.ReportMetric(flops/(cpu1-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
	}
}

func benchSgemm(b *testing.B, o Options, s benchShape) {
	a, lda, bb, ldb, c := benchOperands(s)
	b.ResetTimer()
	cpu0, ok := processCPUTime()
	for b.Loop() {
		o.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
	}
	reportGFLOPS(b, s, cpu0, ok)
}

// BenchmarkSgemm measures Sgemm with the default options (fastest kernel,
// GOMAXPROCS threads).
func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) { benchSgemm(b, Options{}, s) })
	}
}

// BenchmarkSgemmThreads1 measures Sgemm on a single goroutine.
func BenchmarkSgemmThreads1(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) { benchSgemm(b, Options{Threads: 1}, s) })
	}
}

// BenchmarkSgemmPath measures every micro-kernel this CPU supports.
func BenchmarkSgemmPath(b *testing.B) {
	for _, k := range supportedKernels() {
		for _, s := range benchShapes {
			b.Run(k.name+"/"+s.String(), func(b *testing.B) { benchSgemm(b, Options{kern: k}, s) })
		}
	}
}

// BenchmarkSgemmGonum measures gonum's blas32.Gemm on the same shapes for
// comparison.
func BenchmarkSgemmGonum(b *testing.B) {
	tr := func(t bool) blas.Transpose {
		if t {
			return blas.Trans
		}
		return blas.NoTrans
	}
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) {
			a, lda, bb, ldb, c := benchOperands(s)
			ar, ac := s.m, s.k
			if s.transA {
				ar, ac = s.k, s.m
			}
			br, bc := s.k, s.n
			if s.transB {
				br, bc = s.n, s.k
			}
			ga := blas32.General{Rows: ar, Cols: ac, Stride: lda, Data: a}
			gb := blas32.General{Rows: br, Cols: bc, Stride: ldb, Data: bb}
			gc := blas32.General{Rows: s.m, Cols: s.n, Stride: s.n, Data: c}
			b.ResetTimer()
			cpu0, ok := processCPUTime()
			for b.Loop() {
				blas32.Gemm(tr(s.transA), tr(s.transB), 1, ga, gb, 0, gc)
			}
			reportGFLOPS(b, s, cpu0, ok)
		})
	}
}

// BenchmarkDot measures Dot on a 4096-element vector.
func BenchmarkDot(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 14))
	x, y := randomVector(rng, 4096), randomVector(rng, 4096)
	var s float32
	for b.Loop() {
		s += Dot(x, y)
	}
	b.ReportMetric(2*4096*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	_ = s
}

// BenchmarkSoftmax measures Softmax on rows of 256 elements, one attention
// score row.
func BenchmarkSoftmax(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 16))
	x := randomVector(rng, 256)
	for b.Loop() {
		Softmax(x)
	}
	b.ReportMetric(256*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
}
