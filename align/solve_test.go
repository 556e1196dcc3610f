package align

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

func TestProcrustesRecoversRotation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{2, 5, 16} {
		r0 := orthogonal(rng, n)
		// m = Σ Yᵢ·Xᵢᵀ with Yᵢ = R0·Xᵢ: m = R0·X·Xᵀ.
		x := gaussian(rng, n*3*n)
		xxt := make([]float64, n*n)
		for i := range n {
			for j := range n {
				for k := range 3 * n {
					xxt[i*n+j] += x[i*3*n+k] * x[j*3*n+k]
				}
			}
		}
		m := make([]float64, n*n)
		for i := range n {
			for j := range n {
				for k := range n {
					m[i*n+j] += r0[i*n+k] * xxt[k*n+j]
				}
			}
		}
		r, _, err := procrustes(m, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range r {
			if math.Abs(r[i]-r0[i]) > 1e-9 {
				t.Fatalf("n=%d: R[%d] = %v, planted %v", n, i, r[i], r0[i])
			}
		}
	}
}

func TestRotation2(t *testing.T) {
	for _, th := range []float64{0, 0.3, 2, -2.5, math.Pi} {
		c, s := math.Cos(th), math.Sin(th)
		// M = Q·S for a symmetric positive S: the best rotation is Q.
		s00, s01, s11 := 2.0, 0.5, 1.0
		m00, m01 := c*s00-s*s01, c*s01-s*s11
		m10, m11 := s*s00+c*s01, s*s01+c*s11
		gc, gs, v := rotation2(m00, m01, m10, m11)
		if math.Abs(gc-c) > 1e-12 || math.Abs(gs-s) > 1e-12 || math.Abs(v-(s00+s11)) > 1e-12 {
			t.Fatalf("θ=%v: got (%v, %v, %v), want (%v, %v, %v)", th, gc, gs, v, c, s, s00+s11)
		}
	}
}

// TestPlantedAlignment transforms a fixture layer by a random planted
// transform (and MHA: one head per group, GQA: three) and checks that
// solveLayer undoes it: the neuron and head permutations exactly, the
// weights to float32 rounding.
func TestPlantedAlignment(t *testing.T) {
	for _, fx := range []string{"llama-gqa-untied", "qwen2-bias-tied"} {
		t.Run(fx, func(t *testing.T) {
			lay, w := fixtureLayer(t, fx, 1)
			rng := rand.New(rand.NewPCG(9, 9))
			planted := plantedTransform(lay, rng)
			moved, err := transformed(lay, w, planted)
			if err != nil {
				t.Fatal(err)
			}
			got, err := solveLayer(lay, moved, w)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range got.Neurons {
				if planted.Neurons[p] != i {
					t.Fatalf("neuron %d: recovered %d, planted inverse differs", i, p)
				}
			}
			for h, p := range got.Heads {
				if planted.Heads[p] != h {
					t.Fatalf("head %d: recovered %d, planted inverse differs", h, p)
				}
			}
			back, err := transformed(lay, moved, got)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range back.matrices() {
				want := *w.matrices()[i].m
				if e := relDist(*m.m, want); e > 1e-5 {
					t.Errorf("%s: relative distance %.2e after alignment", roleSuffix(m.r), e)
				}
			}
		})
	}
}

// TestAlignmentReducesDistance builds a compound of noisy, randomly
// transformed copies of one layer and checks that alignment to the mean
// brings every matrix kind close to the compound mean.
func TestAlignmentReducesDistance(t *testing.T) {
	lay, w := fixtureLayer(t, "llama-gqa-untied", 0)
	rng := rand.New(rand.NewPCG(4, 4))
	ws := []*weights{w}
	for range 3 {
		c, err := transformed(lay, w, plantedTransform(lay, rng))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.matrices() {
			s := frob(*m.m) / math.Sqrt(float64(len(*m.m)))
			for i := range *m.m {
				(*m.m)[i] += float32(0.1 * s * rng.NormFloat64())
			}
		}
		ws = append(ws, c)
	}
	before := distances(t, lay, ws, identityTransforms(len(ws)))
	ts, err := alignCompound(context.Background(), lay, ws, DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	after := distances(t, lay, ws, ts)
	for r, b := range before {
		t.Logf("%s: %.3f → %.3f", roleSuffix(r), b, after[r])
		if after[r] > 0.2 || after[r] >= b {
			t.Errorf("%s: relative distance to the mean %.3f → %.3f", roleSuffix(r), b, after[r])
		}
	}
}

func identityTransforms(n int) []*Transform {
	ts := make([]*Transform, n)
	for i := range ts {
		ts[i] = &Transform{}
	}
	return ts
}

// distances returns, per matrix kind, the mean over layers of
// ‖W_l − mean‖/‖W_l‖ with the layers under ts.
func distances(t *testing.T, lay *Layout, ws []*weights, ts []*Transform) map[role]float64 {
	t.Helper()
	mean, err := alignedMean(lay, ws, ts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[role]float64{}
	for j, w := range ws {
		c, err := transformed(lay, w, ts[j])
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range c.matrices() {
			out[m.r] += relDist(*m.m, *mean.matrices()[i].m) / float64(len(ws))
		}
	}
	return out
}

func relDist(a, b []float32) float64 {
	var d float64
	for i := range a {
		e := float64(a[i]) - float64(b[i])
		d += e * e
	}
	return math.Sqrt(d) / frob(a)
}

// plantedTransform returns a random transform with every part set.
func plantedTransform(lay *Layout, rng *rand.Rand) *Transform {
	g := lay.group()
	t := &Transform{Neurons: rng.Perm(lay.Intermediate), KVHeads: rng.Perm(lay.KVHeads), Heads: make([]int, lay.Heads)}
	for b, a := range t.KVHeads {
		for y, x := range rng.Perm(g) {
			t.Heads[b*g+y] = a*g + x
		}
		t.VO = append(t.VO, orthogonal(rng, lay.HeadDim))
		var cs []float64
		for range lay.HeadDim / 2 {
			th := rng.Float64() * 2 * math.Pi
			cs = append(cs, math.Cos(th), math.Sin(th))
		}
		t.Planes = append(t.Planes, cs)
	}
	return t
}

// fixtureLayer reads layer l of a golden fixture.
func fixtureLayer(t *testing.T, name string, l int) (*Layout, *weights) {
	t.Helper()
	ck, err := formats.OpenCheckpoint("../testdata/golden/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		t.Fatal(err)
	}
	lay, err := NewLayout(ck.Config, st)
	if err != nil {
		t.Fatal(err)
	}
	w, err := readLayer(context.Background(), ck.ReadFloat32, lay, st, l)
	if err != nil {
		t.Fatal(err)
	}
	return lay, w
}

func gaussian(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// orthogonal returns a random n×n orthogonal matrix, row-major: the Q
// factor of a Gaussian matrix by Gram–Schmidt.
func orthogonal(rng *rand.Rand, n int) []float64 {
	q := gaussian(rng, n*n)
	for i := range n {
		row := q[i*n : (i+1)*n]
		for k := range i {
			prev := q[k*n : (k+1)*n]
			var d float64
			for j := range row {
				d += row[j] * prev[j]
			}
			for j := range row {
				row[j] -= d * prev[j]
			}
		}
		var s float64
		for _, v := range row {
			s += v * v
		}
		for j := range row {
			row[j] /= math.Sqrt(s)
		}
	}
	return q
}
