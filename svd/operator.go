package svd

import (
	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// operator is a matrix W seen by the randomized method only through its
// products with tall, thin float64 matrices.
type operator interface {
	// Dims returns the dimensions of W.
	Dims() (r, c int)
	// product sets dst = W·x, or Wᵀ·x when trans is true. x and dst are
	// float64 matrices with as many columns as each other.
	product(dst *mat.Dense, trans bool, x *mat.Dense)
	// dense returns W as a float64 matrix, for the exact fallback.
	dense() *mat.Dense
}

// denseOp is a float64 operator whose products run through gonum.
type denseOp struct{ d *mat.Dense }

func (o denseOp) Dims() (int, int) { return o.d.Dims() }

func (o denseOp) product(dst *mat.Dense, trans bool, x *mat.Dense) {
	if trans {
		dst.Mul(o.d.T(), x)
		return
	}
	dst.Mul(o.d, x)
}

func (o denseOp) dense() *mat.Dense { return o.d }

// float32Op is a row-major float32 operator whose products run through the
// packed SGEMM of internal/kernels: x is rounded to float32, multiplied with
// float32 accumulation, and the result widened back to float64. Only the
// thin operands are converted; W itself is never copied.
type float32Op struct {
	w       []float32
	m, n    int
	threads int
	// xs and ys are reused conversion buffers for x and dst.
	xs, ys []float32
}

func (o *float32Op) Dims() (int, int) { return o.m, o.n }

func (o *float32Op) product(dst *mat.Dense, trans bool, x *mat.Dense) {
	xr, l := x.Dims()
	dr, _ := dst.Dims()
	o.xs = fit(o.xs, xr*l)
	o.ys = fit(o.ys, dr*l)
	for i := range xr {
		row := x.RawRowView(i)
		out := o.xs[i*l : (i+1)*l]
		for j, v := range row {
			out[j] = float32(v)
		}
	}
	k := kernels.Options{Threads: o.threads}
	if trans {
		k.Sgemm(true, false, o.n, l, o.m, 1, o.w, o.n, o.xs, l, 0, o.ys, l)
	} else {
		k.Sgemm(false, false, o.m, l, o.n, 1, o.w, o.n, o.xs, l, 0, o.ys, l)
	}
	for i := range dr {
		row := dst.RawRowView(i)
		in := o.ys[i*l : (i+1)*l]
		for j, v := range in {
			row[j] = float64(v)
		}
	}
}

func (o *float32Op) dense() *mat.Dense {
	d := mat.NewDense(o.m, o.n, nil)
	for i := range o.m {
		row := d.RawRowView(i)
		for j, v := range o.w[i*o.n : (i+1)*o.n] {
			row[j] = float64(v)
		}
	}
	return d
}

// fit returns s resliced to length n, reallocating when its capacity is
// too small.
func fit(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
