package svd

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// initialEnergyRank is the first candidate rank of the adaptive sketch used
// for energy targets.
const initialEnergyRank = 32

// seedStream is the second PCG seed word; the first is Options.Seed.
const seedStream = 0x9e3779b97f4a7c15

// factorizeRandomized implements the randomized method for a fixed rank or
// an energy target, falling back to the exact method when a sketch would be
// at least as wide as min(m, n).
func factorizeRandomized(d operator, total float64, p params) (*Factors, error) {
	m, n := d.Dims()
	minDim := min(m, n)
	rng := rand.New(rand.NewPCG(p.seed, seedStream))
	if p.rank > 0 {
		r := min(p.rank, minDim)
		if r+p.oversample >= minDim {
			return factorizeExact(d.dense(), total, params{rank: r})
		}
		t, err := randomizedSVD(d, r+p.oversample, p.powerIters, rng)
		if err != nil {
			return nil, err
		}
		return balanced(t, r, total, Randomized), nil
	}
	if p.energy < 1 {
		for k := initialEnergyRank; k+p.oversample < minDim; k *= 2 {
			t, err := randomizedSVD(d, k+p.oversample, p.powerIters, rng)
			if err != nil {
				return nil, err
			}
			if r, ok := rankForEnergy(t.s, total, p.energy); ok && r <= k {
				return balanced(t, r, total, Randomized), nil
			}
		}
	}
	return factorizeExact(d.dense(), total, params{energy: p.energy})
}

// randomizedSVD returns l approximate leading singular triplets of d, which
// must satisfy l < min(m, n). It works on d or its transpose, whichever is
// wide, so that the basis Q is computed in the smaller dimension. The large
// products go through d; the QR factorisations and the SVD of the small
// projected matrix run in float64.
func randomizedSVD(d operator, l, powerIters int, rng *rand.Rand) (thinSVD, error) {
	m, n := d.Dims()
	transposed := m > n
	rows, cols := m, n
	if transposed {
		rows, cols = n, m
	}
	// mul sets dst = w·x (or wᵀ·x when t), where w is d or dᵀ.
	mul := func(dst *mat.Dense, t bool, x *mat.Dense) { d.product(dst, t != transposed, x) }

	omega := mat.NewDense(cols, l, nil)
	for i := range cols {
		row := omega.RawRowView(i)
		for j := range row {
			row[j] = rng.NormFloat64()
		}
	}
	q := mat.NewDense(rows, l, nil)
	mul(q, false, omega)
	d.orthonormalize(q)
	z := omega // reuse: same cols×l shape
	for range powerIters {
		mul(z, true, q)
		d.orthonormalize(z)
		mul(q, false, z)
		d.orthonormalize(q)
	}

	// The projected matrix Qᵀ·w is l×cols; it is formed as (wᵀ·Q)ᵀ.
	mul(z, true, q)
	small := mat.DenseCopyOf(z.T())
	var f mat.SVD
	if !f.Factorize(small, mat.SVDThin) {
		return thinSVD{}, fmt.Errorf("svd: SVD of %d×%d projected matrix did not converge", l, cols)
	}
	var us, vs mat.Dense
	f.UTo(&us)
	f.VTo(&vs)
	left := mat.NewDense(rows, l, nil)
	left.Mul(q, &us)

	t := thinSVD{u: left, v: &vs, s: f.Values(nil)}
	if transposed {
		t.u, t.v = t.v, t.u
	}
	return t, nil
}
