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
	// orthonormalize replaces the tall matrix y in place by an orthonormal
	// basis of its column space, to the precision of the products.
	orthonormalize(y *mat.Dense)
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

func (o denseOp) orthonormalize(y *mat.Dense) { orthonormalize(y) }

// float32Op is a row-major float32 operator whose products run through the
// packed SGEMM of internal/kernels: x is rounded to float32, multiplied with
// float32 accumulation, and the result widened back to float64. Only the
// thin operands are converted; W itself is never copied.
type float32Op struct {
	w       []float32
	m, n    int
	threads int
	// xs and ys are reused conversion buffers for x and dst; q, t, g and
	// ri are the work buffers of orthonormalize.
	xs, ys      []float32
	q, t, g, ri []float32
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

// orthoTol is the largest deviation of QᵀQ from the identity that
// float32Op.cholQR2 accepts. Rounding in float32
// leaves deviations of about √rows·6e-8 (under 1e-5 for 10⁴ rows); larger
// ones mean the sketch was too ill-conditioned for the Gram matrix, and the
// Householder QR in float64 is used instead.
const orthoTol = 1e-4

// orthonormalize replaces y by an orthonormal basis of its column space:
// cholQR2, or the Householder QR in float64 when cholQR2 declines.
func (o *float32Op) orthonormalize(y *mat.Dense) {
	if !o.cholQR2(y) {
		orthonormalize(y)
	}
}

// cholQR2 runs CholeskyQR2 on the float32 SGEMM: twice, the Gram matrix
// G = YᵀY (l×l), its Cholesky factor G = RᵀR in float64, and Y ← Y·R⁻¹.
// Its cost is a few small products instead of a level-2 Householder sweep
// over the whole matrix. It leaves y unchanged and returns false when G is
// not numerically positive definite (a sketch of lower rank than its
// width) or the result is not orthonormal to orthoTol.
func (o *float32Op) cholQR2(y *mat.Dense) bool {
	r, l := y.Dims()
	o.q, o.t = fit(o.q, r*l), fit(o.t, r*l)
	o.g, o.ri = fit(o.g, l*l), fit(o.ri, l*l)
	for i := range r {
		out := o.q[i*l : (i+1)*l]
		for j, v := range y.RawRowView(i) {
			out[j] = float32(v)
		}
	}
	k := kernels.Options{Threads: o.threads}
	sym := mat.NewSymDense(l, nil)
	var ch mat.Cholesky
	var u, inv mat.TriDense
	for range 2 {
		k.Sgemm(true, false, l, l, r, 1, o.q, l, o.q, l, 0, o.g, l)
		for i := range l {
			for j := i; j < l; j++ {
				sym.SetSym(i, j, float64(o.g[i*l+j]))
			}
		}
		if !ch.Factorize(sym) {
			return false
		}
		ch.UTo(&u)
		if err := inv.InverseTri(&u); err != nil {
			return false
		}
		for i := range l {
			for j := range l {
				o.ri[i*l+j] = float32(inv.At(i, j))
			}
		}
		k.Sgemm(false, false, r, l, l, 1, o.q, l, o.ri, l, 0, o.t, l)
		o.q, o.t = o.t, o.q
	}
	k.Sgemm(true, false, l, l, r, 1, o.q, l, o.q, l, 0, o.g, l)
	for i := range l {
		for j := range l {
			want := float32(0)
			if i == j {
				want = 1
			}
			if d := o.g[i*l+j] - want; d > orthoTol || d < -orthoTol || d != d {
				return false
			}
		}
	}
	for i := range r {
		row := y.RawRowView(i)
		for j, v := range o.q[i*l : (i+1)*l] {
			row[j] = float64(v)
		}
	}
	return true
}
