package quant

import (
	"context"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/formats"
)

// GPTQDamping is the ridge RoundGPTQ adds to the Gram matrix, as a fraction
// of the mean of its diagonal: the value of the GPTQ paper, which keeps
// inputs the calibration data never excites from making the inverse
// singular.
const GPTQDamping = 0.01

// GPTQOptions configures RoundGPTQ.
type GPTQOptions struct {
	// Damping is the ridge as a fraction of the mean diagonal of the Gram
	// matrix (0: GPTQDamping).
	Damping float64
	// InOrder rounds the columns in order instead of by decreasing
	// diagonal of the Gram matrix, the most excited inputs first (GPTQ's
	// "act order", the default: on tinystories260K's bit plans, rounded
	// without training, it measured KL 0.080, 0.385 and 3.03 at 4.5, 3.5
	// and 2.5 bits against 0.085, 0.402 and 3.25 in order).
	InOrder bool
}

// RoundGPTQ writes into dst (len rows·cols; it may be w) a quantization of the row-major rows × cols matrix w in scheme s
// chosen to make the output error small on the inputs whose Gram matrix
// is gram (cols × cols, XᵀX of the layer's inputs, one sample per row of
// X): Hessian-aware rounding (GPTQ, Frantar et al. 2022). Columns are
// rounded one at a time; the rounding error of each is spread over the
// columns not yet rounded through the Cholesky factor of the inverse of
// the damped Gram matrix, which minimises ‖(W − Ŵ)·Xᵀ‖ over them.
//
// The scales are those Quantize computes from w (absmax-derived, F16), and
// in every group the element that defines the scale keeps its
// round-to-nearest code, so the result is a fixed point of FakeQuant:
// FakeQuant(dst) == dst bit for bit, and Quantize(dst) stores exactly the
// values dst holds. A quantization-aware trainer that recomputes the
// scales from its weights therefore starts from dst unchanged.
//
// With a diagonal Gram matrix the result is round to nearest. Non-finite
// values in w or gram, a shape mismatch, or a damped Gram matrix that is
// not positive definite are errors wrapping formats.ErrInvalid.
func RoundGPTQ(ctx context.Context, dst, w []float32, rows, cols int, s Scheme, gram mat.Symmetric, opt GPTQOptions) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if rows < 0 || cols < 0 || len(w) != rows*cols || len(dst) != rows*cols {
		return fmt.Errorf("quant: %w: GPTQ of %d → %d values for a %d × %d matrix", formats.ErrInvalid, len(w), len(dst), rows, cols)
	}
	if gram.SymmetricDim() != cols {
		return fmt.Errorf("quant: %w: Gram matrix %d × %d for %d columns", formats.ErrInvalid, gram.SymmetricDim(), gram.SymmetricDim(), cols)
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("quant: %w: element %d is %v", formats.ErrInvalid, i, v)
		}
	}
	if rows*cols == 0 {
		return nil
	}
	damping := opt.Damping
	if damping == 0 {
		damping = GPTQDamping
	}
	order := make([]int, cols)
	for i := range order {
		order[i] = i
	}
	if !opt.InOrder {
		sort.SliceStable(order, func(a, b int) bool { return gram.At(order[a], order[a]) > gram.At(order[b], order[b]) })
	}
	u, err := gptqFactor(gram, order, damping)
	if err != nil {
		return err
	}

	// The static scales of the groups and the element of each that keeps
	// its code.
	g := s.group(cols)
	ng := s.NumGroups(rows, cols)
	scale := make([]float32, ng)
	inv := make([]float32, ng)
	extreme := make([]int, ng)
	lo, hi := codeRange(s)
	for k := range ng {
		grp := w[k*g : min((k+1)*g, len(w))]
		amax := absMax(grp)
		_, scale[k], inv[k] = groupScale(grp, amax, s)
		extreme[k] = k * g
		for i, v := range grp {
			if abs32(v) == amax {
				extreme[k] = k*g + i
				break
			}
		}
	}

	// The working copy of w in float64, columns permuted to the rounding
	// order, one row after another.
	work := make([]float64, rows*cols)
	for r := range rows {
		for p, c := range order {
			work[r*cols+p] = float64(w[r*cols+c])
		}
	}
	for p, c := range order {
		if p%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		d := u.At(p, p)
		urow := u.RawRowView(p)[p+1:]
		for r := range rows {
			i := r*cols + c
			k := i / g
			var code float32
			if i == extreme[k] {
				code = level(w[i], inv[k], lo, hi)
			} else {
				code = level(float32(work[r*cols+p]), inv[k], lo, hi)
			}
			q := code * scale[k]
			dst[i] = q
			e := (work[r*cols+p] - float64(q)) / d
			if e != 0 {
				floats.AddScaled(work[r*cols+p+1:(r+1)*cols], -e, urow)
			}
		}
	}
	return nil
}

// gptqFactor returns the upper Cholesky factor U of the inverse of the
// Gram matrix, permuted to order and damped by damping times the mean of
// its diagonal: (P·(G + λI)·Pᵀ)⁻¹ = UᵀU.
func gptqFactor(gram mat.Symmetric, order []int, damping float64) (*mat.Dense, error) {
	n := len(order)
	var tr float64
	for i := range n {
		tr += gram.At(i, i)
	}
	lambda := damping * tr / float64(n)
	if math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, fmt.Errorf("quant: %w: Gram matrix is not finite", formats.ErrInvalid)
	}
	if lambda <= 0 {
		lambda = damping // an all-zero Gram matrix: round to nearest
	}
	h := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			v := gram.At(order[i], order[j])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("quant: %w: Gram matrix element (%d, %d) is %v", formats.ErrInvalid, order[i], order[j], v)
			}
			if i == j {
				v += lambda
			}
			h.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(h) {
		return nil, fmt.Errorf("quant: %w: damped Gram matrix is not positive definite", formats.ErrInvalid)
	}
	var hinv mat.SymDense
	if err := ch.InverseTo(&hinv); err != nil {
		return nil, fmt.Errorf("quant: %w: inverse of the Gram matrix: %v", formats.ErrInvalid, err)
	}
	var ich mat.Cholesky
	if !ich.Factorize(&hinv) {
		return nil, fmt.Errorf("quant: %w: inverse Gram matrix is not positive definite", formats.ErrInvalid)
	}
	var tri mat.TriDense
	ich.UTo(&tri)
	u := mat.NewDense(n, n, nil)
	u.Copy(&tri)
	return u, nil
}
