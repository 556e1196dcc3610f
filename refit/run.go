package refit

import (
	"context"
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// DefaultDamping is the ridge of SolveB as a fraction of the mean diagonal
// of the compressed inputs' Gram matrix.
const DefaultDamping = 1e-3

// Run corrects the B factor of every low-rank increment of vm in closed
// form (SolveB), in the order the forward pass uses the layers: per block,
// the query/key/value projections, then the output projection, then the
// gate/up projections, then the down projection. Each group is solved on
// the inputs that the already-corrected compressed model produces, against
// the original's outputs on its own inputs, and the new factors are
// re-balanced (svd.Rebalance) before the next group runs. teacher is the
// original model; student must be a transformer loaded from vm, whose dense
// weights Run rewrites as it goes. Every group costs one forward pass of
// both models over inputs. It returns the number of increments corrected.
func Run(ctx context.Context, teacher, student *transformer.Model, vm *vlora.Model, inputs []*transformer.Input, damping float64) (int, error) {
	tt, ts := teacher.NewTrainer(), student.NewTrainer()
	if len(inputs) == 0 {
		return 0, nil
	}
	if _, err := ts.Forward(inputs[0], transformer.Options{}); err != nil {
		return 0, err
	}
	groups := inputGroups(ts.LinearInputs())
	done := 0
	for gi, names := range groups {
		type acc struct{ gram, cross []float64 }
		accs := map[string]*acc{}
		var want []string
		for _, n := range names {
			if l, s, ok := vm.SplitName(n); ok {
				if inc := vm.Increment(l, s); inc != nil && inc.Kind == vlora.KindLowRank && inc.Rank > 0 {
					want = append(want, n)
				}
			}
		}
		if len(want) == 0 {
			continue
		}
		var buf []float32
		for _, in := range inputs {
			if err := ctx.Err(); err != nil {
				return done, err
			}
			if _, err := tt.Forward(in, transformer.Options{}); err != nil {
				return done, err
			}
			if _, err := ts.Forward(in, transformer.Options{}); err != nil {
				return done, err
			}
			tin, sin := byWeight(tt.LinearInputs()), byWeight(ts.LinearInputs())
			for _, n := range want {
				x, xs := tin[n], sin[n]
				if x.X == nil || xs.X == nil {
					return done, fmt.Errorf("refit: no input recorded for %s", n)
				}
				c := x.Cols
				a := accs[n]
				if a == nil {
					a = &acc{gram: make([]float64, c*c), cross: make([]float64, c*c)}
					accs[n] = a
				}
				if cap(buf) < c*c {
					buf = make([]float32, c*c)
				}
				buf = buf[:c*c]
				kernels.Sgemm(true, false, c, c, xs.Rows, 1, xs.X, c, xs.X, c, 0, buf, c)
				for i, v := range buf {
					a.gram[i] += float64(v)
				}
				kernels.Sgemm(true, false, c, c, xs.Rows, 1, xs.X, c, x.X, c, 0, buf, c)
				for i, v := range buf {
					a.cross[i] += float64(v)
				}
			}
		}
		for _, n := range want {
			if err := solveOne(teacher, student, vm, n, accs[n].gram, accs[n].cross, damping); err != nil {
				return done, fmt.Errorf("refit group %d, %s: %w", gi, n, err)
			}
			done++
		}
	}
	return done, nil
}

// solveOne replaces B of weight name by SolveB's, re-balances the factors
// and re-materialises the student's dense weight.
func solveOne(teacher, student *transformer.Model, vm *vlora.Model, name string, gram, cross []float64, damping float64) error {
	l, s, _ := vm.SplitName(name)
	inc := vm.Increment(l, s)
	tw := teacher.Params[name]
	rows, cols := tw.Shape[0], tw.Shape[1]
	r := inc.Rank
	c, _ := vm.Compound(l)
	var base *mat.Dense
	if bt, ok := vm.Tensors[vlora.BaseName(c, s)]; ok {
		base = mat.NewDense(rows, cols, to64(bt.Data))
	}
	at := vm.Tensors[vlora.LoraAName(l, s)]
	bt := vm.Tensors[vlora.LoraBName(l, s)]
	a := mat.NewDense(r, cols, to64(at.Data))
	g := mat.NewSymDense(cols, nil)
	for i := range cols {
		for j := i; j < cols; j++ {
			g.SetSym(i, j, 0.5*(gram[i*cols+j]+gram[j*cols+i]))
		}
	}
	b, err := SolveB(mat.NewDense(rows, cols, to64(tw.Data)), base, a, mat.NewDense(cols, cols, cross), g, damping)
	if err != nil {
		return err
	}
	nb, na, err := svd.Rebalance(b, a)
	if err != nil {
		return err
	}
	copyTo(bt.Data, nb)
	copyTo(at.Data, na)
	w, _, err := vm.LayerWeight(l, s)
	if err != nil {
		return err
	}
	copy(student.Params[name].Data, w)
	return nil
}

// inputGroups splits the linear inputs of one pass into runs that share an
// input buffer (q/k/v; o; gate/up; down), in pass order.
func inputGroups(ins []transformer.LinearInput) [][]string {
	var out [][]string
	var last *float32
	for _, in := range ins {
		p := &in.X[0]
		if p != last {
			out = append(out, nil)
			last = p
		}
		out[len(out)-1] = append(out[len(out)-1], in.Weight)
	}
	return out
}

func byWeight(ins []transformer.LinearInput) map[string]transformer.LinearInput {
	m := make(map[string]transformer.LinearInput, len(ins))
	for _, in := range ins {
		m[in.Weight] = in
	}
	return m
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func copyTo(dst []float32, d *mat.Dense) {
	r, c := d.Dims()
	for i := range r {
		for j := range c {
			dst[i*c+j] = float32(d.At(i, j))
		}
	}
}
