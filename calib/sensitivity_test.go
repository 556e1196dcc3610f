package calib

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/transformer"
)

func TestSensitivity(t *testing.T) {
	// 4 × 16 × 16 positions: MinSensitivityRows exactly.
	m, inputs := tinyModel(t, rand.New(rand.NewPCG(3, 4)), 4, 16, 16)
	const q, down = "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"
	before := map[string][]float32{}
	for _, n := range []string{q, down} {
		before[n] = slices.Clone(m.Params[n].Data)
	}
	// scaled returns the weight times f: f = 1 is exact, larger f moves
	// the output further.
	scaled := func(f float32) func(string) ([]float32, error) {
		return func(name string) ([]float32, error) {
			w := slices.Clone(m.Params[name].Data)
			for i := range w {
				w[i] *= f
			}
			return w, nil
		}
	}
	ctx := context.Background()
	exact, err := Sensitivity(ctx, m, inputs, []string{q, down}, scaled(1))
	if err != nil {
		t.Fatal(err)
	}
	small, err := Sensitivity(ctx, m, inputs, []string{q, down}, scaled(0.9))
	if err != nil {
		t.Fatal(err)
	}
	large, err := Sensitivity(ctx, m, inputs, []string{q, down}, scaled(0.5))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{q, down} {
		// The exact weight reproduces the reference logits, so its KL is
		// the log-softmax's float32 rounding only.
		if math.Abs(exact[n]) > small[n]/100 {
			t.Errorf("%s: KL %g with the exact weight, want ≈ 0 (%g at 0.9×)", n, exact[n], small[n])
		}
		if !(small[n] > 0 && large[n] > small[n]) {
			t.Errorf("%s: KL %g at 0.9× and %g at 0.5×, want 0 < first < second", n, small[n], large[n])
		}
		if !slices.Equal(m.Params[n].Data, before[n]) {
			t.Errorf("%s: weight not restored", n)
		}
	}
	// The measured KL is the one a model with the weight replaced gives.
	w, _ := scaled(0.5)(down)
	if err := m.SetParam(down, w); err != nil {
		t.Fatal(err)
	}
	var sum float64
	var rows int
	for _, in := range inputs {
		m.SetParam(down, before[down])
		ref, err := m.Forward(in, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := slices.Clone(ref.Logits)
		m.SetParam(down, w)
		got, err := m.Forward(in, transformer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		kl, err := transformer.KLDiv(r, got.Logits, 11, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum += kl * float64(len(r)/11)
		rows += len(r) / 11
	}
	m.SetParam(down, before[down])
	if want := sum / float64(rows); math.Abs(large[down]-want) > 1e-9*max(1, want) {
		t.Errorf("KL %g, want %g from separate passes", large[down], want)
	}

	if _, err := Sensitivity(ctx, m, inputs, []string{"nope"}, scaled(1)); !errors.Is(err, transformer.ErrNotFound) {
		t.Errorf("unknown tensor: %v, want ErrNotFound", err)
	}
	short := func(string) ([]float32, error) { return make([]float32, 3), nil }
	if _, err := Sensitivity(ctx, m, inputs, []string{q}, short); err == nil {
		t.Error("no error for an approximation of the wrong size")
	}
	if _, err := Sensitivity(ctx, m, nil, []string{q}, scaled(1)); err == nil {
		t.Error("no error without inputs")
	}
	if _, err := Sensitivity(ctx, m, inputs[:3], []string{q}, scaled(0.5)); !errors.Is(err, ErrTooFewRows) {
		t.Errorf("768 rows: %v, want ErrTooFewRows", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Sensitivity(cancelled, m, inputs, []string{q}, scaled(0.5)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRelativeError(t *testing.T) {
	// tol: the sums run in float64 over at most 5×7 products of float32
	// values, so only the inputs' rounding matters.
	const tol = 1e-12
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ rows, cols int }{{5, 7}, {7, 3}, {1, 1}} {
		w, a := make([]float32, c.rows*c.cols), make([]float32, c.rows*c.cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
			a[i] = w[i] + float32(0.3*rng.NormFloat64())
		}
		x := mat.NewDense(4*c.cols, c.cols, nil)
		for i := range 4 * c.cols {
			for j := range c.cols {
				x.Set(i, j, rng.NormFloat64())
			}
		}
		var g mat.SymDense
		g.SymOuterK(1, x.T())
		// Reference: ‖E·Xᵀ‖² / ‖W·Xᵀ‖² with the inputs themselves.
		wd, ed := mat.NewDense(c.rows, c.cols, nil), mat.NewDense(c.rows, c.cols, nil)
		for i := range c.rows {
			for j := range c.cols {
				wd.Set(i, j, float64(w[i*c.cols+j]))
				ed.Set(i, j, float64(w[i*c.cols+j])-float64(a[i*c.cols+j]))
			}
		}
		var wx, ex mat.Dense
		wx.Mul(wd, x.T())
		ex.Mul(ed, x.T())
		want := math.Pow(mat.Norm(&ex, 2), 2) / math.Pow(mat.Norm(&wx, 2), 2)
		got, err := RelativeError(w, a, c.rows, c.cols, &g)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > tol*want {
			t.Errorf("%d×%d whitened: %g, want %g", c.rows, c.cols, got, want)
		}
		plain := math.Pow(mat.Norm(ed, 2), 2) / math.Pow(mat.Norm(wd, 2), 2)
		if got, _ := RelativeError(w, a, c.rows, c.cols, nil); math.Abs(got-plain) > tol*plain {
			t.Errorf("%d×%d plain: %g, want %g", c.rows, c.cols, got, plain)
		}
	}
	if _, err := RelativeError(make([]float32, 6), make([]float32, 6), 2, 4, nil); err == nil {
		t.Error("no error for a size that does not match the shape")
	}
	if _, err := RelativeError(make([]float32, 6), make([]float32, 6), 2, 3, mat.NewSymDense(2, nil)); err == nil {
		t.Error("no error for a Gram matrix of the wrong order")
	}
}
