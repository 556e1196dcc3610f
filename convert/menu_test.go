package convert

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/svd"
)

func TestLowRankRanks(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want []int
	}{
		{0, []int{0}},
		{1, []int{0, 1}},
		{5, []int{0, 1, 2, 3, 4, 5}},
		{13, []int{0, 1, 2, 3, 4, 6, 8, 12, 13}},
		{64, []int{0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}},
	} {
		if got := lowRankRanks(tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("lowRankRanks(%d) = %v, want %v", tc.max, got, tc.want)
		}
	}
}

// menuFixture is an odd-shaped weight, a base, and a Gram matrix of
// anisotropic inputs with the damped matrix its whitener factorises.
type menuFixture struct {
	rows, cols int
	w, base    []float64
	wh         *svd.Whitener
	damped     *mat.SymDense
}

func newMenuFixture(t *testing.T) menuFixture {
	const rows, cols = 7, 45
	rng := rand.New(rand.NewPCG(3, 4))
	f := menuFixture{rows: rows, cols: cols, w: make([]float64, rows*cols), base: make([]float64, rows*cols)}
	for i := range f.w {
		// float32 values, as a checkpoint holds them.
		f.w[i] = float64(float32(rng.NormFloat64()))
		f.base[i] = f.w[i] * 0.5 * float64(float32(rng.Float64()))
	}
	x := mat.NewDense(50, cols, nil)
	for i := range 50 {
		for j := range cols {
			x.Set(i, j, rng.NormFloat64()*float64(1+j%5))
		}
	}
	var g mat.SymDense
	g.SymOuterK(1, x.T())
	var err error
	if f.wh, err = svd.NewWhitener(&g, svd.DefaultDamping); err != nil {
		t.Fatal(err)
	}
	f.damped = mat.NewSymDense(cols, nil)
	var tr float64
	for i := range cols {
		tr += g.At(i, i)
	}
	for i := range cols {
		for j := i; j < cols; j++ {
			v := g.At(i, j)
			if i == j {
				v += svd.DefaultDamping * tr / cols
			}
			f.damped.SetSym(i, j, v)
		}
	}
	return f
}

// quad returns tr(A·G·Aᵀ) for the rows×cols matrix a.
func quad(a []float64, rows, cols int, g mat.Symmetric) float64 {
	m := mat.NewDense(rows, cols, a)
	var s float64
	for i := range rows {
		r := m.RowView(i)
		s += mat.Inner(r, g, r)
	}
	return s
}

// TestMenuLosses checks every option's loss against its definition,
// tr(E·G·Eᵀ)/tr(W·G·Wᵀ) with E = W − Ŵ, on an odd shape, with and without
// a Gram matrix and a base: Ŵ the rounded dense tensor, or the rounded
// factors of the SVD stage (computed here by svd.Whitened), and the
// bits of every option against quant.Scheme.StorageBits.
func TestMenuLosses(t *testing.T) {
	// tol: the losses sum in float64 from float32 roundings, and the
	// factors here come from a second, independent factorisation.
	const tol = 1e-6
	f := newMenuFixture(t)
	rows, cols := f.rows, f.cols
	for _, whitened := range []bool{false, true} {
		for _, withBase := range []bool{false, true} {
			var wh *svd.Whitener
			gram := mat.Symmetric(eye(cols))
			if whitened {
				wh, gram = f.wh, f.damped
			}
			var base []float64
			if withBase {
				base = f.base
			}
			tm := newTensorMenu(f.w, base, rows, cols, wh)
			lr, err := tm.lowRankBitOptions(32)
			if err != nil {
				t.Fatal(err)
			}
			opts := append(tm.denseBitOptions(32), lr...)
			d := slices.Clone(f.w)
			for i := range d {
				if base != nil {
					d[i] -= base[i]
				}
			}
			total := quad(f.w, rows, cols, gram)
			round := func(x []float64, r, c int, s quant.Scheme) []float64 {
				if s.Bits == 0 {
					return x
				}
				src, dst := make([]float32, len(x)), make([]float32, len(x))
				for i, v := range x {
					src[i] = float32(v)
				}
				quant.FakeQuant(dst, src, r, c, s)
				out := make([]float64, len(x))
				for i, v := range dst {
					out[i] = float64(v)
				}
				return out
			}
			for _, o := range opts {
				var approx []float64
				var bits int64
				switch {
				case o.Dense:
					approx = round(d, rows, cols, o.Scheme)
					bits = schemeBits(o.Scheme, rows, cols, 32)
				case o.Rank == 0:
					approx = make([]float64, len(d))
				default:
					var fac *svd.Factors
					if whitened {
						// Whitened damps the Gram matrix it is given.
						fac, err = svd.Whitened(mat.NewDense(rows, cols, slices.Clone(d)), rawGram(f), o.Rank, svd.DefaultDamping)
					} else {
						fac, err = svd.Factorize(mat.NewDense(rows, cols, slices.Clone(d)), svd.Options{Rank: o.Rank})
					}
					if err != nil {
						t.Fatal(err)
					}
					b := round(fac.B.RawMatrix().Data, rows, o.Rank, o.Scheme)
					a := round(fac.A.RawMatrix().Data, o.Rank, cols, o.Scheme)
					var p mat.Dense
					p.Mul(mat.NewDense(rows, o.Rank, b), mat.NewDense(o.Rank, cols, a))
					approx = p.RawMatrix().Data
					bits = schemeBits(o.Scheme, rows, o.Rank, 32) + schemeBits(o.Scheme, o.Rank, cols, 32)
				}
				e := make([]float64, len(d))
				for i := range e {
					e[i] = d[i] - approx[i]
				}
				want := quad(e, rows, cols, gram) / total
				if math.Abs(o.Loss-want) > tol*max(want, 1e-3) {
					t.Errorf("whitened %v, base %v, %v: loss %g, want %g", whitened, withBase, o, o.Loss, want)
				}
				if o.Dense || o.Rank > 0 {
					if o.Cost != bits {
						t.Errorf("%v: %d bits, want %d", o, o.Cost, bits)
					}
				}
			}
			if withBase {
				for _, s := range FactorSchemes {
					want := 0.0
					if s.Bits != 0 {
						rb := round(f.base, rows, cols, s)
						e := make([]float64, len(rb))
						for i := range e {
							e[i] = f.base[i] - rb[i]
						}
						want = quad(e, rows, cols, gram) / total
					}
					if got := tm.baseLoss(f.base, s); math.Abs(got-want) > tol*max(want, 1e-3) {
						t.Errorf("whitened %v: base loss in %v %g, want %g", whitened, s, got, want)
					}
				}
			}
		}
	}
}

// rawGram rebuilds the undamped Gram matrix of the fixture from its damped
// one (the damping adds DefaultDamping·mean(diag G) to the diagonal).
func rawGram(f menuFixture) *mat.SymDense {
	n := f.cols
	var tr float64
	for i := range n {
		tr += f.damped.At(i, i)
	}
	// tr(damped) = tr(G)·(1 + DefaultDamping).
	add := svd.DefaultDamping * tr / (1 + svd.DefaultDamping) / float64(n)
	g := mat.NewSymDense(n, nil)
	g.CopySym(f.damped)
	for i := range n {
		g.SetSym(i, i, g.At(i, i)-add)
	}
	return g
}

// TestParamOptions checks the options of a parameter budget: rank r costs
// r·(rows+cols) values and loses the whitened tail Σ_{i>r} σᵢ² relative to
// ‖W·L‖², dense costs rows·cols and loses nothing.
func TestParamOptions(t *testing.T) {
	const tol = 1e-9
	f := newMenuFixture(t)
	tm := newTensorMenu(f.w, nil, f.rows, f.cols, f.wh)
	opts, err := tm.paramOptions()
	if err != nil {
		t.Fatal(err)
	}
	var wl mat.Dense
	wl.Mul(mat.NewDense(f.rows, f.cols, f.w), f.wh.L)
	var sv mat.SVD
	if !sv.Factorize(&wl, mat.SVDNone) {
		t.Fatal("SVD")
	}
	s := sv.Values(nil)
	var total float64
	for _, v := range s {
		total += v * v
	}
	maxRank := (f.rows*f.cols - 1) / (f.rows + f.cols)
	if len(opts) != maxRank+2 {
		t.Fatalf("%d options, want ranks 0..%d and dense", len(opts), maxRank)
	}
	for r, o := range opts[:maxRank+1] {
		var tail float64
		for _, v := range s[r:] {
			tail += v * v
		}
		if o.Dense || o.Rank != r || o.Cost != int64(r*(f.rows+f.cols)) || math.Abs(o.Loss-tail/total) > tol {
			t.Errorf("option %d: %+v, want rank %d, cost %d, loss %g", r, o, r, r*(f.rows+f.cols), tail/total)
		}
	}
	if d := opts[maxRank+1]; !d.Dense || d.Cost != int64(f.rows*f.cols) || d.Loss != 0 {
		t.Errorf("dense option %+v", d)
	}
}

func eye(n int) *mat.SymDense {
	m := mat.NewSymDense(n, nil)
	for i := range n {
		m.SetSym(i, i, 1)
	}
	return m
}
