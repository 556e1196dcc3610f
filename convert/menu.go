package convert

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/svd"
)

// MinTargetBits is the least bit budget a caller may ask for; whether a
// checkpoint reaches it depends on its 1-D tensors, which stay float.
const MinTargetBits = 1.0

// DenseSchemes are the quantized dense storages of the bit menu: int8 with
// one scale per row, and int4, int3 and int2 with groups of 32, 64 and 128
// values (full-range codes, F16 scales). The menu also holds dense storage
// in the file's float dtype.
var DenseSchemes = []quant.Scheme{
	{Bits: 8, Full: true},
	{Bits: 4, GroupSize: 32, Full: true}, {Bits: 4, GroupSize: 64, Full: true}, {Bits: 4, GroupSize: 128, Full: true},
	{Bits: 3, GroupSize: 32, Full: true}, {Bits: 3, GroupSize: 64, Full: true}, {Bits: 3, GroupSize: 128, Full: true},
	{Bits: 2, GroupSize: 32, Full: true}, {Bits: 2, GroupSize: 64, Full: true}, {Bits: 2, GroupSize: 128, Full: true},
}

// FactorSchemes are the storages of the factors of a low-rank option, and
// of the compound bases, in the bit menu: the file's float dtype (the zero
// Scheme), int8 per row and int4 in groups of 32.
var FactorSchemes = []quant.Scheme{{}, {Bits: 8, Full: true}, {Bits: 4, GroupSize: 32, Full: true}}

// Option is one way to store a 2-D tensor (the increment of a layer
// tensor, W − base, or a pass-through tensor): dense, or as rank-Rank
// factors B·A.
type Option struct {
	// Dense stores the tensor whole; otherwise it is stored as factors of
	// rank Rank (0 stores nothing: the tensor is its base, or zero).
	Dense bool
	Rank  int
	// Scheme is the storage of the dense tensor or of both factors; the
	// zero Scheme is the file's float dtype.
	Scheme quant.Scheme
	// Cost is what the option stores: values under a parameter budget,
	// bits (codes and F16 scales) under a bit budget.
	Cost int64
	// Loss is the estimated relative error ‖(W − Ŵ)·L‖²_F / ‖W·L‖²_F, L·Lᵀ
	// the damped Gram matrix of the layer's inputs (L = I without one),
	// not counting the rounding of a shared base (see Planner):
	//   - float factors: the whitened truncation error Σ_{i>r} σᵢ², σ the
	//     singular values of (W − base)·L;
	//   - quantized dense: the whitened rounding error of W − base,
	//     computed by rounding to nearest;
	//   - quantized factors: computed by rounding the factors B and A of
	//     the whitened truncation (as the SVD stage writes them) to nearest
	//     and measuring the error of their product, truncation included;
	//   - float dense: 0 (an F16 or BF16 file's own rounding, a relative
	//     error near 2⁻¹¹ or 2⁻⁸ per value, is not counted).
	Loss float64
}

// String returns "dense int4/g32/full", "dense float" or
// "rank 12 int8/row/full".
func (o Option) String() string {
	s := "float"
	if o.Scheme.Bits != 0 {
		s = o.Scheme.String()
	}
	if o.Dense {
		return "dense " + s
	}
	return fmt.Sprintf("rank %d %s", o.Rank, s)
}

// tensorMenu computes the options of one rows×cols tensor.
type tensorMenu struct {
	rows, cols int
	// d is the tensor to store, W − base (W without a base).
	d []float64
	// wh whitens the losses (nil: plain); tot is ‖W·L‖²_F, which every
	// loss is relative to (1 when W·L is zero).
	wh  *svd.Whitener
	tot float64
}

// newTensorMenu returns the menu of the weight w less base (nil: none),
// whitened by wh when it is not nil.
func newTensorMenu(w, base []float64, rows, cols int, wh *svd.Whitener) *tensorMenu {
	tm := &tensorMenu{rows: rows, cols: cols, wh: wh, d: make([]float64, len(w))}
	copy(tm.d, w)
	if base != nil {
		for i := range tm.d {
			tm.d[i] -= base[i]
		}
	}
	tm.tot = tm.energy(mat.NewDense(rows, cols, append([]float64(nil), w...)))
	if tm.tot == 0 {
		tm.tot = 1
	}
	return tm
}

// energy returns ‖X·L‖²_F (‖X‖²_F without a whitener).
func (tm *tensorMenu) energy(x *mat.Dense) float64 {
	if tm.wh != nil {
		var xl mat.Dense
		xl.Mul(x, tm.wh.L)
		x = &xl
	}
	n := mat.Norm(x, 2)
	return n * n
}

// spectrum returns the singular values of (W − base)·L.
func (tm *tensorMenu) spectrum() ([]float64, error) {
	dm := mat.NewDense(tm.rows, tm.cols, tm.d)
	if tm.wh != nil {
		return tm.wh.Spectrum(dm)
	}
	var f mat.SVD
	if !f.Factorize(dm, mat.SVDNone) {
		return nil, fmt.Errorf("SVD did not converge")
	}
	return f.Values(nil), nil
}

// paramOptions returns the options of a parameter budget: every rank r
// with r·(rows+cols) < rows·cols (and at most the spectrum's length), at
// r·(rows+cols) values, and dense at rows·cols values with no loss.
func (tm *tensorMenu) paramOptions() ([]Option, error) {
	s, err := tm.spectrum()
	if err != nil {
		return nil, err
	}
	tail := tails(s)
	m, n := tm.rows, tm.cols
	maxRank := min((m*n-1)/(m+n), len(s))
	opts := make([]Option, 0, maxRank+2)
	for r := 0; r <= maxRank; r++ {
		opts = append(opts, Option{Rank: r, Cost: int64(r) * int64(m+n), Loss: tail[r] / tm.tot})
	}
	return append(opts, Option{Dense: true, Cost: int64(m) * int64(n)}), nil
}

// tails returns t with t[r] = Σ_{i≥r} s[i]².
func tails(s []float64) []float64 {
	t := make([]float64, len(s)+1)
	for i := len(s) - 1; i >= 0; i-- {
		t[i] = t[i+1] + s[i]*s[i]
	}
	return t
}

// denseBitOptions returns dense storage in floatBits per value and in each
// of DenseSchemes.
func (tm *tensorMenu) denseBitOptions(floatBits int64) []Option {
	m, n := tm.rows, tm.cols
	opts := []Option{{Dense: true, Cost: floatBits * int64(m) * int64(n)}}
	d32 := make([]float32, len(tm.d))
	for i, v := range tm.d {
		d32[i] = float32(v)
	}
	fq := make([]float32, len(d32))
	e := make([]float64, len(d32))
	for _, s := range DenseSchemes {
		quant.FakeQuant(fq, d32, m, n, s)
		for i := range e {
			e[i] = tm.d[i] - float64(fq[i])
		}
		opts = append(opts, Option{Dense: true, Scheme: s, Cost: s.StorageBits(m, n), Loss: tm.energy(mat.NewDense(m, n, e)) / tm.tot})
	}
	return opts
}

// schemeBits returns the bits of a rows×cols tensor in s, floatBits per
// value for the zero Scheme.
func schemeBits(s quant.Scheme, rows, cols int, floatBits int64) int64 {
	if s.Bits == 0 {
		return floatBits * int64(rows) * int64(cols)
	}
	return s.StorageBits(rows, cols)
}

// lowRankRanks returns the ranks the bit menu offers for a tensor whose
// factors must stay below maxRank+1: 0, then 1, 2, 3, 4, 6, 8, 12, … (powers
// of two and their halfway points), and maxRank.
func lowRankRanks(maxRank int) []int {
	out := []int{0}
	for p := 1; p <= maxRank; p *= 2 {
		out = append(out, p)
		if q := p + p/2; q > p && q <= maxRank && q < 2*p {
			out = append(out, q)
		}
	}
	if out[len(out)-1] != maxRank {
		out = append(out, maxRank)
	}
	return out
}

// lowRankBitOptions returns the low-rank options of the bit menu: every
// rank of lowRankRanks whose factors hold fewer values than the tensor,
// with the factors in each of FactorSchemes (floatBits per value for the
// float ones). The factors are those of the whitened truncation, balanced
// (svd.Whitener.Factorize), which the SVD stage writes.
func (tm *tensorMenu) lowRankBitOptions(floatBits int64) ([]Option, error) {
	m, n := tm.rows, tm.cols
	dm := mat.NewDense(m, n, tm.d)
	maxRank := (m*n - 1) / (m + n)
	var opts []Option
	dl := mat.DenseCopyOf(dm)
	if tm.wh != nil {
		dl.Mul(dm, tm.wh.L)
	}
	ranks := lowRankRanks(maxRank)
	var fs []*svd.Factors
	var err error
	if tm.wh != nil {
		fs, err = tm.wh.Truncations(dm, ranks)
	} else {
		fs, err = svd.Truncations(dm, ranks)
	}
	if err != nil {
		return nil, err
	}
	full := tm.energy(dm)
	for k, r := range ranks {
		if r == 0 {
			opts = append(opts, Option{Loss: full / tm.tot})
			continue
		}
		f := fs[k]
		if f.Rank < r {
			break
		}
		for _, s := range FactorSchemes {
			o := Option{Rank: r, Scheme: s, Cost: schemeBits(s, m, r, floatBits) + schemeBits(s, r, n, floatBits)}
			if s.Bits == 0 {
				o.Loss = max(f.TotalEnergy*(1-f.EnergyFraction()), 0) / tm.tot
			} else {
				// E·L = D·L − B̂·(Â·L), cheaper than (D − B̂·Â)·L for r < rows.
				b, a := roundFactor(f.B, s), roundFactor(f.A, s)
				if tm.wh != nil {
					var al mat.Dense
					al.Mul(a, tm.wh.L)
					a = &al
				}
				var e mat.Dense
				e.Mul(b, a)
				e.Sub(dl, &e)
				fe := mat.Norm(&e, 2)
				o.Loss = fe * fe / tm.tot
			}
			opts = append(opts, o)
		}
	}
	return opts, nil
}

// roundFactor returns x rounded to nearest in s, as storage rounds it.
func roundFactor(x *mat.Dense, s quant.Scheme) *mat.Dense {
	r, c := x.Dims()
	src := make([]float32, r*c)
	for i := range r {
		for j := range c {
			src[i*c+j] = float32(x.At(i, j))
		}
	}
	dst := make([]float32, len(src))
	quant.FakeQuant(dst, src, r, c, s)
	out := mat.NewDense(r, c, nil)
	for i := range r {
		for j := range c {
			out.Set(i, j, float64(dst[i*c+j]))
		}
	}
	return out
}

// baseLoss returns the relative whitened error ‖(base − Q(base))·L‖²_F /
// ‖W·L‖²_F that rounding the shared base to s adds to this tensor.
func (tm *tensorMenu) baseLoss(base []float64, s quant.Scheme) float64 {
	if s.Bits == 0 {
		return 0
	}
	b32 := make([]float32, len(base))
	for i, v := range base {
		b32[i] = float32(v)
	}
	fq := make([]float32, len(b32))
	quant.FakeQuant(fq, b32, tm.rows, tm.cols, s)
	e := make([]float64, len(base))
	for i := range e {
		e[i] = base[i] - float64(fq[i])
	}
	return tm.energy(mat.NewDense(tm.rows, tm.cols, e)) / tm.tot
}
