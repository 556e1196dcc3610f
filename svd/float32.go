package svd

import (
	"errors"
	"fmt"
	"math"
)

// FactorizeFloat32 is Factorize for the m×n row-major float32 matrix a,
// which it reads in place and does not modify.
//
// With the randomized method, the products with a — the sketch, the power
// iterations and the projection, which hold all of the method's O(m·n·l)
// work — run on the float32 SGEMM of internal/kernels with at most
// opt.Threads goroutines; the orthonormalisations and the SVD of the small
// projected matrix stay in float64. The rounding of the products is about
// 1e-7·√min(m, n) relative, far below the randomized method's own
// approximation error. The exact method, and the exact fallback of the
// randomized one, copy a to float64.
func FactorizeFloat32(a []float32, m, n int, opt Options) (*Factors, error) {
	p, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	if m <= 0 || n <= 0 {
		return nil, fmt.Errorf("svd: empty %d×%d matrix", m, n)
	}
	if len(a) != m*n {
		return nil, fmt.Errorf("svd: %d values for a %d×%d matrix", len(a), m, n)
	}
	total, err := squaredNorm32(a, n)
	if err != nil {
		return nil, err
	}
	if p.energy > 0 && total == 0 {
		return &Factors{S: []float64{}, Method: p.method}, nil
	}
	op := &float32Op{w: a, m: m, n: n, threads: p.threads}
	if p.method == Randomized {
		return factorizeRandomized(op, total, p)
	}
	return factorizeExact(op.dense(), total, p)
}

// squaredNorm32 returns ‖a‖_F², accumulated in float64, or an error
// locating the first non-finite element of the row-major matrix a with n
// columns.
func squaredNorm32(a []float32, n int) (float64, error) {
	var sum float64
	for _, v := range a {
		sum += float64(v) * float64(v)
	}
	if !math.IsNaN(sum) && !math.IsInf(sum, 0) {
		return sum, nil
	}
	for k, v := range a {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("svd: element (%d, %d) is %v", k/n, k%n, v)
		}
	}
	return 0, errors.New("svd: squared Frobenius norm overflows float64")
}
