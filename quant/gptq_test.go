package quant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
)

// randGram returns XᵀX for n samples of cols correlated inputs (a shared
// factor plus noise, scaled per column), the kind of Gram matrix whose
// off-diagonal terms GPTQ exploits.
func randGram(rng *rand.Rand, n, cols int) *mat.SymDense {
	x := mat.NewDense(n, cols, nil)
	mix := make([]float64, cols)
	scale := make([]float64, cols)
	for j := range cols {
		mix[j] = rng.NormFloat64()
		scale[j] = 0.2 + 2*rng.Float64()
	}
	for i := range n {
		f := rng.NormFloat64()
		for j := range cols {
			x.Set(i, j, scale[j]*(mix[j]*f+rng.NormFloat64()))
		}
	}
	g := mat.NewSymDense(cols, nil)
	g.SymOuterK(1, x.T())
	return g
}

// dampedGram returns G + λI as RoundGPTQ damps it.
func dampedGram(g mat.Symmetric, damping float64) *mat.SymDense {
	n := g.SymmetricDim()
	var tr float64
	for i := range n {
		tr += g.At(i, i)
	}
	h := mat.NewSymDense(n, nil)
	h.CopySym(g)
	for i := range n {
		h.SetSym(i, i, h.At(i, i)+damping*tr/float64(n))
	}
	return h
}

// outputError returns tr((W−Q)·H·(W−Q)ᵀ), the squared output error on the
// inputs of H.
func outputError(w, q []float32, rows, cols int, h mat.Symmetric) float64 {
	var sum float64
	for r := range rows {
		for i := range cols {
			ei := float64(w[r*cols+i]) - float64(q[r*cols+i])
			for j := range cols {
				ej := float64(w[r*cols+j]) - float64(q[r*cols+j])
				sum += ei * h.At(i, j) * ej
			}
		}
	}
	return sum
}

var gptqSchemes = []Scheme{
	{Bits: 8}, {Bits: 8, Full: true}, {Bits: 4, GroupSize: 32}, {Bits: 4, GroupSize: 32, Full: true},
	{Bits: 3, GroupSize: 8, Full: true}, {Bits: 2, GroupSize: 16, Full: true}, {Bits: 2, GroupSize: 7},
}

// TestRoundGPTQFixedPoint: FakeQuant, the refresh rule of
// quantization-aware training, reproduces GPTQ's output bit for bit, and
// storing it (Quantize, Dequantize) does too.
func TestRoundGPTQFixedPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range gptqSchemes {
		for _, sh := range testShapes {
			for _, act := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%dx%d/act=%v", s, sh.rows, sh.cols, act), func(t *testing.T) {
					w := randMatrix(rng, sh.rows, sh.cols)
					g := randGram(rng, 3*sh.cols+5, sh.cols)
					dst := make([]float32, len(w))
					if err := RoundGPTQ(context.Background(), dst, w, sh.rows, sh.cols, s, g, GPTQOptions{InOrder: !act}); err != nil {
						t.Fatal(err)
					}
					fq := make([]float32, len(w))
					FakeQuant(fq, dst, sh.rows, sh.cols, s)
					qt, err := Quantize(dst, sh.rows, sh.cols, s)
					if err != nil {
						t.Fatal(err)
					}
					deq := make([]float32, len(w))
					qt.Dequantize(deq)
					// The scales are those of w: the stored file's scales
					// do not drift from round to nearest's.
					ref, _ := Quantize(w, sh.rows, sh.cols, s)
					for k := range ref.Scales {
						if qt.Scales[k] != ref.Scales[k] {
							t.Fatalf("scale %d: %#x, round to nearest %#x", k, qt.Scales[k], ref.Scales[k])
						}
					}
					for i := range dst {
						if math.Float32bits(fq[i]) != math.Float32bits(dst[i]) || math.Float32bits(deq[i]) != math.Float32bits(dst[i]) {
							t.Fatalf("element %d: GPTQ %v, FakeQuant %v, stored %v", i, dst[i], fq[i], deq[i])
						}
					}
				})
			}
		}
	}
}

// TestRoundGPTQDiagonal: without correlations between inputs there is no
// error to spread, and GPTQ is round to nearest exactly.
func TestRoundGPTQDiagonal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range gptqSchemes {
		rows, cols := 5, 48
		w := randMatrix(rng, rows, cols)
		g := mat.NewSymDense(cols, nil)
		for i := range cols {
			g.SetSym(i, i, 0.1+rng.Float64())
		}
		dst := make([]float32, len(w))
		if err := RoundGPTQ(context.Background(), dst, w, rows, cols, s, g, GPTQOptions{}); err != nil {
			t.Fatal(err)
		}
		fq := make([]float32, len(w))
		FakeQuant(fq, w, rows, cols, s)
		for i := range dst {
			if dst[i] != fq[i] {
				t.Fatalf("%s: element %d: GPTQ %v, round to nearest %v", s, i, dst[i], fq[i])
			}
		}
	}
}

// gptqNaive is the optimal-brain-surgeon form of GPTQ in order: after
// rounding column j, the columns F not yet rounded move by
// −(w_j − q_j)/[H_F⁻¹]_jj · [H_F⁻¹]_{j,F}, with H_F⁻¹ the inverse of the
// damped Gram matrix restricted to {j} ∪ F, formed afresh at every step.
// RoundGPTQ computes the same updates from one Cholesky factor.
func gptqNaive(w []float32, rows, cols int, s Scheme, h mat.Symmetric) []float32 {
	g := s.group(cols)
	lo, hi := codeRange(s)
	work := make([]float64, len(w))
	for i, v := range w {
		work[i] = float64(v)
	}
	out := make([]float32, len(w))
	for j := range cols {
		m := cols - j
		sub := mat.NewSymDense(m, nil)
		for a := range m {
			for b := a; b < m; b++ {
				sub.SetSym(a, b, h.At(j+a, j+b))
			}
		}
		var inv mat.Dense
		if err := inv.Inverse(sub); err != nil {
			panic(err)
		}
		for r := range rows {
			i := r*cols + j
			k := i / g
			grp := w[k*g : min((k+1)*g, len(w))]
			amax := absMax(grp)
			_, sc, iv := groupScale(grp, amax, s)
			first := k * g
			for x, v := range grp {
				if abs32(v) == amax {
					first = k*g + x
					break
				}
			}
			var q float32
			if i == first {
				q = level(w[i], iv, lo, hi) * sc
			} else {
				q = level(float32(work[i]), iv, lo, hi) * sc
			}
			out[i] = q
			e := (work[i] - float64(q)) / inv.At(0, 0)
			for b := 1; b < m; b++ {
				work[i+b] -= e * inv.At(0, b)
			}
		}
	}
	return out
}

// TestRoundGPTQNaive compares RoundGPTQ with the step-by-step reference.
// The two compute each updated weight in a different order of float64
// operations (a Cholesky factor against fresh inverses); a weight within
// about 1e-12 of a rounding boundary could round either way, which random
// data does not produce, so the codes are compared exactly.
func TestRoundGPTQNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range gptqSchemes {
		for _, sh := range []struct{ rows, cols int }{{1, 1}, {3, 7}, {4, 33}, {6, 20}, {2, 64}} {
			w := randMatrix(rng, sh.rows, sh.cols)
			g := randGram(rng, 2*sh.cols+3, sh.cols)
			dst := make([]float32, len(w))
			if err := RoundGPTQ(context.Background(), dst, w, sh.rows, sh.cols, s, g, GPTQOptions{InOrder: true}); err != nil {
				t.Fatal(err)
			}
			want := gptqNaive(w, sh.rows, sh.cols, s, dampedGram(g, GPTQDamping))
			for i := range dst {
				if dst[i] != want[i] {
					t.Fatalf("%s %dx%d: element %d: %v, reference %v", s, sh.rows, sh.cols, i, dst[i], want[i])
				}
			}
		}
	}
}

// TestRoundGPTQBruteForce compares GPTQ with the best codes found by
// exhaustive search on one row of 6 values in int2 (4^5 choices, the
// group's extreme keeping its code and scale): GPTQ is greedy, so it may
// miss the optimum, but it must close most of the gap that round to
// nearest leaves, and its last column must be the exact best given the
// others (the greedy step is optimal for the last column).
func TestRoundGPTQBruteForce(t *testing.T) {
	// closedShare is the least mean share of round to nearest's excess
	// error over the optimum that GPTQ must remove; GPTQ removes about
	// half of it on these correlated inputs.
	const closedShare = 0.3
	rng := rand.New(rand.NewPCG(7, 8))
	s := Scheme{Bits: 2, GroupSize: 6, Full: true}
	const cols = 6
	lo, hi := codeRange(s)
	var closed float64
	trials := 0
	for trials < 60 {
		w := randMatrix(rng, 1, cols)
		g := randGram(rng, 20, cols)
		h := dampedGram(g, GPTQDamping)
		got := make([]float32, cols)
		if err := RoundGPTQ(context.Background(), got, w, 1, cols, s, g, GPTQOptions{InOrder: true}); err != nil {
			t.Fatal(err)
		}
		rtn := make([]float32, cols)
		FakeQuant(rtn, w, 1, cols, s)
		_, sc, _ := groupScale(w, absMax(w), s)
		ext := 0
		for i, v := range w {
			if abs32(v) == absMax(w) {
				ext = i
				break
			}
		}
		bestErr := math.Inf(1)
		q := make([]float32, cols)
		var search func(i int)
		search = func(i int) {
			if i == cols {
				if e := outputError(w, q, 1, cols, h); e < bestErr {
					bestErr = e
				}
				return
			}
			if i == ext {
				q[i] = rtn[i]
				search(i + 1)
				return
			}
			for c := lo; c <= hi; c++ {
				q[i] = c * sc
				search(i + 1)
			}
		}
		search(0)
		eG, eR := outputError(w, got, 1, cols, h), outputError(w, rtn, 1, cols, h)
		if eG < bestErr*(1-1e-9) {
			t.Fatalf("GPTQ error %g below the exhaustive optimum %g", eG, bestErr)
		}
		// The last column, given the others: exhaustive over its codes.
		if ext != cols-1 {
			lastBest, lastErr := float32(0), math.Inf(1)
			q := append([]float32(nil), got...)
			for c := lo; c <= hi; c++ {
				q[cols-1] = c * sc
				if e := outputError(w, q, 1, cols, h); e < lastErr {
					lastBest, lastErr = q[cols-1], e
				}
			}
			if lastBest != got[cols-1] {
				t.Fatalf("last column %v, best given the others %v", got[cols-1], lastBest)
			}
		}
		if eR-bestErr > 1e-12 {
			closed += (eR - eG) / (eR - bestErr)
			trials++
		}
	}
	if mean := closed / float64(trials); mean < closedShare {
		t.Fatalf("GPTQ closes %.2f of round to nearest's excess error, want at least %.2f", mean, closedShare)
	} else {
		t.Logf("GPTQ closes %.2f of round to nearest's excess error over the optimum", mean)
	}
}

func TestRoundGPTQErrors(t *testing.T) {
	ctx := context.Background()
	s := Scheme{Bits: 4, GroupSize: 32, Full: true}
	g := mat.NewSymDense(4, nil)
	for i := range 4 {
		g.SetSym(i, i, 1)
	}
	nan := mat.NewSymDense(4, nil)
	nan.SetSym(0, 0, math.NaN())
	offInf := mat.NewSymDense(4, nil)
	offInf.CopySym(g)
	offInf.SetSym(1, 2, math.Inf(1))
	cases := []struct {
		name string
		w    []float32
		rows int
		cols int
		g    mat.Symmetric
	}{
		{"length", make([]float32, 7), 2, 4, g},
		{"gram size", make([]float32, 6), 2, 3, g},
		{"nan weight", []float32{0, float32(math.NaN()), 0, 0}, 1, 4, g},
		{"nan gram", make([]float32, 4), 1, 4, nan},
		{"infinite off-diagonal", make([]float32, 4), 1, 4, offInf},
	}
	for _, c := range cases {
		err := RoundGPTQ(ctx, make([]float32, len(c.w)), c.w, c.rows, c.cols, s, c.g, GPTQOptions{})
		if !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("%s: error %v, want formats.ErrInvalid", c.name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := RoundGPTQ(cctx, make([]float32, 4), make([]float32, 4), 1, 4, s, g, GPTQOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v", err)
	}
}
