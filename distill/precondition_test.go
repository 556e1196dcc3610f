package distill

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestPreconditionMatchesInverse checks the ScaledGD gradients of a
// random non-square low-rank pair against products with explicit float64
// inverses. The tolerance covers float32 Gram matrices and results of a
// well-conditioned (damped) system.
func TestPreconditionMatchesInverse(t *testing.T) {
	const tol = 1e-4
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols, r := 9, 13, 4
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	a := &vlora.Tensor{Data: rnd(r * cols)}
	b := &vlora.Tensor{Data: rnd(rows * r)}
	gA, gB := rnd(r*cols), rnd(rows*r)
	bd := &binding{dense: &transformer.Param{Name: "w"}, rows: rows, cols: cols, rank: r, a: a, b: b,
		aP: &param{grad: append([]float32(nil), gA...)}, bP: &param{grad: append([]float32(nil), gB...)}}
	st := &student{bindings: []*binding{bd}}
	const damping = 0.1
	if err := st.precondition(damping); err != nil {
		t.Fatal(err)
	}
	dense := func(rr, cc int, x []float32) *mat.Dense {
		d := mat.NewDense(rr, cc, nil)
		for i := range rr {
			for j := range cc {
				d.Set(i, j, float64(x[i*cc+j]))
			}
		}
		return d
	}
	ridgeInv := func(g *mat.Dense) *mat.Dense {
		n, _ := g.Dims()
		eps := damping * mat.Trace(g) / float64(n)
		for i := range n {
			g.Set(i, i, g.At(i, i)+eps)
		}
		var inv mat.Dense
		if err := inv.Inverse(g); err != nil {
			t.Fatal(err)
		}
		return &inv
	}
	A, B := dense(r, cols, a.Data), dense(rows, r, b.Data)
	var aat, btb, wantB, wantA mat.Dense
	aat.Mul(A, A.T())
	btb.Mul(B.T(), B)
	wantB.Mul(dense(rows, r, gB), ridgeInv(&aat))
	wantA.Mul(ridgeInv(&btb), dense(r, cols, gA))
	for _, c := range []struct {
		name string
		got  []float32
		want *mat.Dense
	}{{"B", bd.bP.grad, &wantB}, {"A", bd.aP.grad, &wantA}} {
		_, cc := c.want.Dims()
		for i, v := range c.got {
			w := c.want.At(i/cc, i%cc)
			if math.Abs(float64(v)-w) > tol*(1+math.Abs(w)) {
				t.Errorf("∇%s[%d] = %.6g, want %.6g", c.name, i, v, w)
				break
			}
		}
	}
}
