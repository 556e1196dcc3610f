package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vectorLengths cover empty input, lengths below and around every unrolling
// width (4, 8, 16, 32, 64) and a long vector.
var vectorLengths = []int{0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 257, 1000}

func randomVector(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

// vectorImpl is one implementation of the vector helpers: the portable Go
// code, and the exported functions, which use assembly where the CPU allows.
type vectorImpl struct {
	name  string
	dot   func(x, y []float32) float32
	axpy  func(alpha float32, x, y []float32)
	scale func(alpha float32, x []float32)
}

var vectorImpls = []vectorImpl{
	{"generic", dotGeneric, axpyGeneric, scaleGeneric},
	{"default", Dot, Axpy, Scale},
}

// TestDot compares Dot with a float64 reference. Tolerance: (√n+2)·u·Σ|x·y|,
// the same probabilistic rounding bound as the GEMM conformance test.
func TestDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, impl := range vectorImpls {
		for _, n := range vectorLengths {
			x, y := randomVector(rng, n), randomVector(rng, n)
			var want, mag float64
			for i := range x {
				want += float64(x[i]) * float64(y[i])
				mag += math.Abs(float64(x[i]) * float64(y[i]))
			}
			got := impl.dot(x, y)
			if d := math.Abs(float64(got) - want); d > (math.Sqrt(float64(n))+2)*unitRoundoff*mag {
				t.Errorf("%s n=%d: Dot = %g, want %g", impl.name, n, got, want)
			}
		}
	}
}

// TestAxpyScale checks Axpy and Scale element by element. Each output element
// is one fused or unfused multiply-add, so the tolerance is 2u relative to
// |y| + |alpha·x|.
func TestAxpyScale(t *testing.T) {
	t.Run("length mismatch", func(t *testing.T) {
		for name, f := range map[string]func(){
			"Dot":  func() { Dot(make([]float32, 3), make([]float32, 4)) },
			"Axpy": func() { Axpy(1, make([]float32, 4), make([]float32, 3)) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s: no panic", name)
					}
				}()
				f()
			}()
		}
	})
	rng := rand.New(rand.NewPCG(7, 8))
	const alpha = float32(-1.7)
	for _, impl := range vectorImpls {
		for _, n := range vectorLengths {
			x, y := randomVector(rng, n), randomVector(rng, n)
			y0 := append([]float32(nil), y...)
			impl.axpy(alpha, x, y)
			for i := range y {
				want := float64(y0[i]) + float64(alpha)*float64(x[i])
				lim := 2 * unitRoundoff * (math.Abs(float64(y0[i])) + math.Abs(float64(alpha)*float64(x[i])))
				if d := math.Abs(float64(y[i]) - want); d > lim {
					t.Fatalf("%s n=%d: Axpy y[%d] = %g, want %g", impl.name, n, i, y[i], want)
				}
			}
			x0 := append([]float32(nil), x...)
			impl.scale(alpha, x)
			for i := range x {
				if want := alpha * x0[i]; x[i] != want {
					t.Fatalf("%s n=%d: Scale x[%d] = %g, want %g", impl.name, n, i, x[i], want)
				}
			}
		}
	}
}

// TestExpf checks the float32 exponential against math.Exp over the whole
// finite domain and at the special values. Tolerance: 2 ulp of the float32
// result, the bound its doc comment promises.
func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87.3); x <= 88.7; x += 0.00137 {
		want := math.Exp(float64(x))
		got := float64(expf(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want))
		if e := math.Abs(got-want) / ulp; e > worst {
			worst = e
		}
		if math.Abs(got-want) > 2*ulp {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	t.Logf("worst error %.2f ulp", worst)
	specials := []struct{ x, want float32 }{
		{float32(math.Inf(-1)), 0},
		{-200, 0},
		{0, 1},
		{89, float32(math.Inf(1))},
		{float32(math.Inf(1)), float32(math.Inf(1))},
	}
	for _, s := range specials {
		if got := expf(s.x); got != s.want {
			t.Errorf("expf(%g) = %g, want %g", s.x, got, s.want)
		}
	}
	if got := expf(float32(math.NaN())); got == got {
		t.Errorf("expf(NaN) = %g, want NaN", got)
	}
}

// TestSoftmaxRows compares with a float64 softmax on rows with stride
// padding, large offsets (which would overflow without the max shift) and
// -Inf entries. Tolerance per element, relative: (4 + |x-max|)·u, that is
// 2 ulp from expf, one rounding each for the sum and the division, plus the
// float32 rounding of the argument x-max, which e^· turns into a relative
// error of |x-max|·u.
func TestSoftmaxRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, cols, ld = 5, 37, 40
	x := make([]float32, rows*ld)
	for i := range x {
		x[i] = float32(rng.Float64()*20 - 10)
		if i%ld >= cols {
			x[i] = sentinel
		}
	}
	for j := range cols {
		x[1*ld+j] += 1000 // overflow without the max shift
	}
	x[2*ld+3] = float32(math.Inf(-1))
	x0 := append([]float32(nil), x...)
	SoftmaxRows(rows, cols, x, ld)
	for i := range rows {
		row := x0[i*ld : i*ld+cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		for j := range ld {
			got := x[i*ld+j]
			if j >= cols {
				if got != sentinel {
					t.Fatalf("row %d: padding %d overwritten", i, j)
				}
				continue
			}
			want := math.Exp(float64(row[j])-mx) / sum
			if d := math.Abs(float64(got) - want); d > (4+mx-float64(row[j]))*unitRoundoff*want {
				t.Fatalf("row %d col %d: got %g, want %g", i, j, got, want)
			}
		}
	}
	allInf := []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}
	Softmax(allInf)
	if allInf[0] == allInf[0] {
		t.Errorf("softmax of all -Inf = %v, want NaN", allInf)
	}
}

// TestExpSub checks both implementations of the softmax exponential pass
// element by element against math.Exp of the same float32 argument x-mx,
// with the 2 ulp tolerance of expf; arguments below the normal range
// (including -Inf) must give exactly 0 and NaN must stay NaN. The returned
// sum must match the float64 sum of the outputs to 1e-12 relative (only the
// order of the float64 additions differs).
func TestExpSub(t *testing.T) {
	impls := []struct {
		name string
		f    func(x []float32, mx float32) float64
	}{{"generic", expSubGeneric}, {"default", expSub}}
	rng := rand.New(rand.NewPCG(19, 20))
	for _, impl := range impls {
		for _, n := range vectorLengths[1:] {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.Float64()*110 - 100)
			}
			// Special values, in the vectorised part and in the tail.
			specials := []float32{float32(math.Inf(-1)), -1e30, float32(math.NaN())}
			for i, v := range specials {
				if j := (i*7 + 3) % n; j != 0 {
					x[j] = v
				}
			}
			mx := maxOfGeneric(x)
			x0 := append([]float32(nil), x...)
			sum := impl.f(x, mx)
			var want float64
			for i, v := range x {
				want += float64(v)
				arg := x0[i] - mx
				switch {
				case arg != arg:
					if v == v {
						t.Fatalf("%s n=%d: exp(NaN) = %g", impl.name, n, v)
					}
					continue
				case arg < -87.33654475:
					if v != 0 {
						t.Fatalf("%s n=%d: exp(%g) = %g, want 0", impl.name, n, arg, v)
					}
					continue
				}
				e := math.Exp(float64(arg))
				ulp := float64(math.Nextafter32(float32(e), float32(math.Inf(1)))) - float64(float32(e))
				if d := math.Abs(float64(v) - e); d > 2*ulp {
					t.Fatalf("%s n=%d: exp(%g) = %g, want %g (%.2f ulp)", impl.name, n, arg, v, e, d/ulp)
				}
			}
			if want == want && math.Abs(sum-want) > 1e-12*math.Abs(want) {
				t.Fatalf("%s n=%d: sum %g, want %g", impl.name, n, sum, want)
			}
			if want != want && sum == sum {
				t.Fatalf("%s n=%d: sum %g, want NaN", impl.name, n, sum)
			}
		}
	}
}

// TestMaxOf compares the vectorised maximum with the portable loop; both
// select an element, so they must agree exactly.
func TestMaxOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range vectorLengths[1:] {
		for range 3 {
			x := randomVector(rng, n)
			x[rng.IntN(n)] = 5 // somewhere, including the tail
			if got, want := maxOf(x), maxOfGeneric(x); got != want {
				t.Fatalf("n=%d: maxOf = %g, want %g", n, got, want)
			}
		}
	}
}
