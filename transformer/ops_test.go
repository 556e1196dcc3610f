package transformer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerances of the op-level gradient checks. The analytic gradients are
// computed in float32 and compared with central differences of float64
// reference implementations (step fdStep: truncation error ~fdStep² and
// cancellation error ~1e-16/fdStep, both near 1e-10), so the comparison
// measures float32 rounding only, observed at 1e-7 to 3e-7 relative.
// opGradTol leaves an order of magnitude of room; a wrong formula gives
// errors of order 1.
const (
	fdStep    = 1e-5
	opFwdTol  = 1e-5
	opGradTol = 2e-6
)

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// numGrad returns the central-difference gradient of f at x (every
// coordinate).
func numGrad(x []float64, f func([]float64) float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		x[i] = old + fdStep
		fp := f(x)
		x[i] = old - fdStep
		fm := f(x)
		x[i] = old
		g[i] = (fp - fm) / (2 * fdStep)
	}
	return g
}

func checkGrad(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	e := relErr64(to64(got), want)
	t.Logf("%s: gradient rel err %.2e", what, e)
	if e > opGradTol || math.IsNaN(e) {
		t.Errorf("%s: gradient rel err %.2e > %.0e", what, e, opGradTol)
	}
}

// refNorm is the float64 reference normalisation of rows of width h.
func refNorm(kind NormKind, x, w, b []float64, h int, eps float64) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < len(x); i += h {
		r := x[i : i+h]
		var mu float64
		if kind == LayerNorm {
			for _, v := range r {
				mu += v
			}
			mu /= float64(h)
		}
		var ss float64
		for _, v := range r {
			ss += (v - mu) * (v - mu)
		}
		rs := 1 / math.Sqrt(ss/float64(h)+eps)
		for j, v := range r {
			y[i+j] = (v - mu) * rs * w[j]
			if b != nil {
				y[i+j] += b[j]
			}
		}
	}
	return y
}

func TestNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, h = 5, 11
	for _, tc := range []struct {
		kind NormKind
		bias bool
	}{{RMSNorm, false}, {LayerNorm, true}, {LayerNorm, false}} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			x := randSlice(rng, n*h, 1.5)
			w := &Param{Data: randSlice(rng, h, 1)}
			nm := norm{kind: tc.kind, w: w, eps: 1e-5}
			var b64 []float64
			if tc.bias {
				nm.b = &Param{Data: randSlice(rng, h, 1)}
				b64 = to64(nm.b.Data)
			}
			R := to64(randSlice(rng, n*h, 1))
			y := make([]float32, n*h)
			mean, rstd := make([]float32, n), make([]float32, n)
			normForward(&nm, 2, n, h, x, y, mean, rstd)
			want := refNorm(tc.kind, to64(x), to64(w.Data), b64, h, 1e-5)
			if e := relErr64(to64(y), want); e > opFwdTol {
				t.Errorf("forward rel err %.2e", e)
			}
			// Loss Σ y⊙R; accumulate onto a non-zero dx to check accumulation.
			dx := make([]float32, n*h)
			base := randSlice(rng, n*h, 1)
			copy(dx, base)
			dw, db := make([]float32, h), make([]float32, h)
			normBackward(&nm, 2, n, h, x, mean, rstd, to32(R), dx, true, dw, db)
			for i := range dx {
				dx[i] -= base[i]
			}
			x64, w64 := to64(x), to64(w.Data)
			checkGrad(t, "dx", dx, numGrad(x64, func(v []float64) float64 { return dot64(refNorm(tc.kind, v, w64, b64, h, 1e-5), R) }))
			checkGrad(t, "dw", dw, numGrad(w64, func(v []float64) float64 { return dot64(refNorm(tc.kind, x64, v, b64, h, 1e-5), R) }))
			if tc.bias {
				checkGrad(t, "db", db, numGrad(b64, func(v []float64) float64 { return dot64(refNorm(tc.kind, x64, w64, v, h, 1e-5), R) }))
			}
			// Overwrite mode, aliasing dy.
			dy := to32(R)
			normBackward(&nm, 1, n, h, x, mean, rstd, dy, dy, false, make([]float32, h), make([]float32, h))
			if e := relErr(dy, dx); e > 1e-6 {
				t.Errorf("aliased overwrite differs from accumulate by %.2e", e)
			}
		})
	}
}

// refAttention is the float64 reference attention over the q|k|v layout of
// attnGeom.
func refAttention(g attnGeom, qkv []float64) []float64 {
	out := make([]float64, g.B*g.T*g.ldo)
	for b := range g.B {
		for h := range g.nh {
			qo, ko, vo, oo := g.offsets(b, h)
			for i := range g.T {
				n := g.T
				if g.causal {
					n = i + 1
				}
				s := make([]float64, n)
				mx := math.Inf(-1)
				for j := range n {
					var d float64
					for c := range g.hd {
						d += qkv[qo+i*g.ld+c] * qkv[ko+j*g.ld+c]
					}
					s[j] = d * float64(g.scale)
					mx = math.Max(mx, s[j])
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for c := range g.hd {
					var o float64
					for j := range s {
						o += s[j] * qkv[vo+j*g.ld+c]
					}
					out[oo+i*g.ldo+c] = o / sum
				}
			}
		}
	}
	return out
}

func TestAttentionGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name                   string
		B, T, nh, nkv, hd, blk int
		causal                 bool
	}{
		{"causal-gqa-blocks", 2, 21, 4, 2, 6, 8, true},
		{"causal-mqa", 1, 13, 3, 1, 4, 64, true},
		{"bidirectional-blocks", 2, 11, 2, 2, 5, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run(tc.name, func(t *testing.T) {
				g := attnGeom{B: tc.B, T: tc.T, nh: tc.nh, nkv: tc.nkv, hd: tc.hd, causal: tc.causal, scale: 0.45, block: tc.blk}
				g.ld, g.ldo = (tc.nh+2*tc.nkv)*tc.hd, tc.nh*tc.hd
				qkv := randSlice(rng, tc.B*tc.T*g.ld, 1)
				out := make([]float32, tc.B*tc.T*g.ldo)
				lse := make([]float32, tc.B*tc.nh*tc.T)
				attentionForward(g, 2, qkv, out, lse)
				qkv64 := to64(qkv)
				want := refAttention(g, qkv64)
				if e := relErr64(to64(out), want); e > opFwdTol {
					t.Errorf("forward rel err %.2e", e)
				}
				R := randSlice(rng, len(out), 1)
				dqkv := make([]float32, len(qkv))
				for i := range dqkv {
					dqkv[i] = float32(math.NaN()) // every entry must be written
				}
				attentionBackward(g, 2, qkv, out, lse, R, dqkv)
				R64 := to64(R)
				checkGrad(t, "dqkv", dqkv, numGrad(qkv64, func(v []float64) float64 { return dot64(refAttention(g, v), R64) }))
			})
		})
	}
}

func TestRope(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const T, hd = 9, 10
	rt := newRopeTable(T, hd, 500)
	for tt := range T {
		x := randSlice(rng, hd, 1)
		y := append([]float32(nil), x...)
		rt.rotate(y, tt)
		for i := range hd / 2 {
			ang := float64(tt) / math.Pow(500, float64(2*i)/hd)
			a, b := float64(x[i]), float64(x[i+hd/2])
			wa, wb := a*math.Cos(ang)-b*math.Sin(ang), b*math.Cos(ang)+a*math.Sin(ang)
			if math.Abs(float64(y[i])-wa) > 1e-5 || math.Abs(float64(y[i+hd/2])-wb) > 1e-5 {
				t.Fatalf("t=%d i=%d: got %g %g, want %g %g", tt, i, y[i], y[i+hd/2], wa, wb)
			}
		}
		// rotateBack is the transpose: <rotate(x), z> = <x, rotateBack(z)>.
		z := randSlice(rng, hd, 1)
		zb := append([]float32(nil), z...)
		rt.rotateBack(zb, tt)
		if l, r := dot64(to64(y), to64(z)), dot64(to64(x), to64(zb)); math.Abs(l-r) > 1e-5 {
			t.Errorf("t=%d: <Rx,z> = %g, <x,Rᵀz> = %g", tt, l, r)
		}
	}
}

// refAct is the float64 reference activation.
func refAct(a Activation, x float64) float64 {
	switch a {
	case SiLU:
		return x / (1 + math.Exp(-x))
	case GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case ReLU:
		return math.Max(x, 0)
	}
	panic("unknown activation")
}

func TestMLPActivationGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, I = 4, 13
	for _, tc := range []struct {
		act   Activation
		gated bool
	}{{SiLU, true}, {GELUTanh, true}, {SiLU, false}, {GELUTanh, false}, {GELU, false}, {ReLU, false}} {
		name := tc.act.String()
		if tc.gated {
			name += "-gated"
		}
		t.Run(name, func(t *testing.T) {
			mp := mlp{gated: tc.gated, act: tc.act, up: linear{out: I}, gate: linear{out: I}}
			W := mp.width()
			gu := randSlice(rng, n*W, 2)
			if tc.act == ReLU { // keep clear of the kink at 0
				for i, v := range gu {
					if math.Abs(float64(v)) < 1e-3 {
						gu[i] = 0.5
					}
				}
			}
			act := make([]float32, n*I)
			mlpActivate(&mp, 2, n, gu, act)
			ref := func(v []float64) []float64 {
				out := make([]float64, n*I)
				for r := range n {
					for j := range I {
						if tc.gated {
							out[r*I+j] = refAct(tc.act, v[r*W+j]) * v[r*W+I+j]
						} else {
							out[r*I+j] = refAct(tc.act, v[r*W+j])
						}
					}
				}
				return out
			}
			gu64 := to64(gu)
			if e := relErr64(to64(act), ref(gu64)); e > opFwdTol {
				t.Errorf("forward rel err %.2e", e)
			}
			R := randSlice(rng, n*I, 1)
			dgu := make([]float32, n*W)
			mlpActivateBackward(&mp, 2, n, gu, R, dgu)
			R64 := to64(R)
			checkGrad(t, "dgu", dgu, numGrad(gu64, func(v []float64) float64 { return dot64(ref(v), R64) }))
		})
	}
}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, in, out = 7, 5, 9
	for _, inOut := range []bool{false, true} {
		l := linear{in: in, out: out, inOut: inOut, w: &Param{Data: randSlice(rng, in*out, 1)}}
		wAt := func(o, i int) float64 {
			if inOut {
				return float64(l.w.Data[i*out+o])
			}
			return float64(l.w.Data[o*in+i])
		}
		const ldx, ldy = in + 2, out + 3 // strided rows
		x := randSlice(rng, n*ldx, 1)
		y := randSlice(rng, n*ldy, 1)
		y0 := append([]float32(nil), y...)
		opt := gemmOpts(2)
		l.forward(opt, n, x, ldx, y, ldy, 1)
		dy := randSlice(rng, n*ldy, 1)
		dx := make([]float32, n*ldx)
		l.backwardInput(opt, n, dy, ldy, dx, ldx, 0)
		dw := make([]float32, in*out)
		l.backwardWeight(opt, n, x, ldx, dy, ldy, dw)
		var gotY, wantY, gotDx, wantDx []float64
		for r := range n {
			for o := range out {
				s := float64(y0[r*ldy+o])
				for i := range in {
					s += float64(x[r*ldx+i]) * wAt(o, i)
				}
				gotY, wantY = append(gotY, float64(y[r*ldy+o])), append(wantY, s)
			}
			for i := range in {
				var s float64
				for o := range out {
					s += float64(dy[r*ldy+o]) * wAt(o, i)
				}
				gotDx, wantDx = append(gotDx, float64(dx[r*ldx+i])), append(wantDx, s)
			}
		}
		wantDw := make([]float64, in*out)
		for o := range out {
			for i := range in {
				var s float64
				for r := range n {
					s += float64(dy[r*ldy+o]) * float64(x[r*ldx+i])
				}
				if inOut {
					wantDw[i*out+o] = s
				} else {
					wantDw[o*in+i] = s
				}
			}
		}
		for _, c := range []struct {
			what      string
			got, want []float64
		}{{"forward", gotY, wantY}, {"dx", gotDx, wantDx}, {"dw", to64(dw), wantDw}} {
			if e := relErr64(c.got, c.want); e > opFwdTol {
				t.Errorf("inOut=%v %s: rel err %.2e", inOut, c.what, e)
			}
		}
	}
}
