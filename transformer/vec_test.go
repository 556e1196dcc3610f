package transformer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vecTol bounds the relative error of the float32 exponential-based loops
// against float64: expf is within 2e-7 relative, and the few float32
// operations around it add a few ulp.
const vecTol = 1e-6

// vecLengths exercise the empty, tail-only, vector-only and mixed cases.
var vecLengths = []int{1, 3, 7, 8, 9, 16, 29, 64, 257}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

func closeRel(got float32, want float64, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*math.Max(math.Abs(want), 1e-30)
}

func TestExpf(t *testing.T) {
	for _, x := range []float32{-87, -50, -10, -1, -1e-3, 0, 1e-3, 0.5, 1, 10, 50, 88} {
		if got, want := expf(x), math.Exp(float64(x)); !closeRel(got, want, 2e-7) {
			t.Errorf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if expf(-100) != 0 || !math.IsInf(float64(expf(100)), 1) || !math.IsNaN(float64(expf(float32(math.NaN())))) {
		t.Errorf("expf limits: %g %g %g", expf(-100), expf(100), expf(float32(math.NaN())))
	}
}

func TestVectorLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range vecLengths {
		x := randSlice(rng, n, 4)
		// expSubSum
		c := float32(1.5)
		y := append([]float32(nil), x...)
		s := expSubSum(y, c)
		var ws float64
		for i, v := range x {
			w := math.Exp(float64(v) - float64(c))
			ws += w
			if !closeRel(y[i], w, vecTol) {
				t.Fatalf("n=%d expSubSum[%d] = %g, want %g", n, i, y[i], w)
			}
		}
		if !closeRel(s, ws, vecTol) {
			t.Errorf("n=%d expSubSum sum %g, want %g", n, s, ws)
		}
		// maxOf
		wm := x[0]
		for _, v := range x {
			wm = max(wm, v)
		}
		if got := maxOf(x); got != wm {
			t.Errorf("n=%d maxOf = %g, want %g", n, got, wm)
		}
		// siluMul and its gradient
		u, da := randSlice(rng, n, 1), randSlice(rng, n, 1)
		out, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
		siluMul(x, u, out)
		siluMulGrad(x, u, da, dg, du)
		for i := range x {
			g := float64(x[i])
			sg := 1 / (1 + math.Exp(-g))
			if w := g * sg * float64(u[i]); !closeRel(out[i], w, vecTol) {
				t.Fatalf("n=%d siluMul[%d] = %g, want %g", n, i, out[i], w)
			}
			if w := float64(da[i]) * float64(u[i]) * sg * (1 + g*(1-sg)); !closeRel(dg[i], w, 1e-5) {
				t.Fatalf("n=%d siluMulGrad dg[%d] = %g, want %g", n, i, dg[i], w)
			}
			if w := float64(da[i]) * g * sg; !closeRel(du[i], w, vecTol) {
				t.Fatalf("n=%d siluMulGrad du[%d] = %g, want %g", n, i, du[i], w)
			}
		}
		// sumSquares and scaleMul
		var wss float64
		for _, v := range x {
			wss += float64(v) * float64(v)
		}
		if got := sumSquares(x); math.Abs(got-wss) > vecTol*wss {
			t.Errorf("n=%d sumSquares = %g, want %g", n, got, wss)
		}
		sm := make([]float32, n)
		scaleMul(x, u, sm, 0.7)
		for i := range x {
			if w := u[i] * (x[i] * 0.7); sm[i] != w {
				t.Fatalf("n=%d scaleMul[%d] = %g, want %g", n, i, sm[i], w)
			}
		}
		// softmaxGrad
		p := append([]float32(nil), x...)
		dp := randSlice(rng, n, 1)
		dp0 := append([]float32(nil), dp...)
		l, ds := float32(2), float32(0.3)
		softmaxGrad(p, dp, l, ds)
		for i := range x {
			e := math.Exp(float64(x[i]) - float64(l))
			if !closeRel(p[i], e, vecTol) {
				t.Fatalf("n=%d softmaxGrad p[%d] = %g, want %g", n, i, p[i], e)
			}
			if w := e * (float64(dp0[i]) - float64(ds)); math.Abs(float64(dp[i])-w) > 1e-6*(math.Abs(w)+e) {
				t.Fatalf("n=%d softmaxGrad dp[%d] = %g, want %g", n, i, dp[i], w)
			}
		}
	}
}

// TestVectorLoopsExtremes checks clamping far outside the float32 range of
// e**x: the results must stay finite and sensible (0 or 1 for σ).
// TestRotateHeads compares the vector rotation of a row of heads with the
// scalar one, for a head size the vector loop takes (half = 8, 16) and one it
// does not (half = 5).
func TestRotateHeads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{16, 32, 10} {
		const T, heads = 7, 3
		rt := newRopeTable(T, hd, 10000)
		for tt := range T {
			row := randSlice(rng, heads*hd+5, 1)
			want := append([]float32(nil), row...)
			for h := range heads {
				rt.rotate(want[h*hd:(h+1)*hd], tt)
			}
			rt.rotateHeads(row, heads, tt)
			for i := range row {
				if math.Abs(float64(row[i]-want[i])) > 1e-6*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("hd=%d t=%d: [%d] = %g, want %g", hd, tt, i, row[i], want[i])
				}
			}
		}
	}
}

func TestVectorLoopsExtremes(t *testing.T) {
	x := []float32{-1000, -200, -90, 90, 200, 1000, -1000, 1000, 0}
	u := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}
	out := make([]float32, len(x))
	siluMul(x, u, out)
	for i, v := range x {
		want := float64(v) / (1 + math.Exp(-float64(v)))
		if math.Abs(float64(out[i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("silu(%g) = %g, want %g", v, out[i], want)
		}
	}
	y := []float32{0, -1000, -200, -90, -50, 0, 0, 0, -3}
	expSubSum(y, 0)
	for i, v := range y {
		if v < 0 || v > 1 || math.IsNaN(float64(v)) {
			t.Errorf("exp(%d) = %g outside [0,1]", i, v)
		}
	}
}
