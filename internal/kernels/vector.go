package kernels

import (
	"fmt"
	"math"
)

// Dot returns the dot product Σ x[i]·y[i]. It panics if the lengths differ.
// The sum is accumulated in float32 in several independent partial sums.
func Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: Dot: length mismatch %d != %d", len(x), len(y)))
	}
	return dot(x, y)
}

// Axpy computes y[i] += alpha·x[i]. It panics if the lengths differ. When
// alpha is zero y is left unchanged.
func Axpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: Axpy: length mismatch %d != %d", len(x), len(y)))
	}
	if alpha == 0 {
		return
	}
	axpy(alpha, x, y)
}

// Scale computes x[i] *= alpha.
func Scale(alpha float32, x []float32) {
	scale(alpha, x)
}

// Softmax replaces x by softmax(x): x[i] = exp(x[i]-max) / Σ_j exp(x[j]-max).
// The exponentials are computed in float32 to within 2 ulp and summed in
// float64. Elements equal to -Inf become 0; if every element is -Inf the
// result is NaN, as in PyTorch. An empty slice is left unchanged.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	sum := expSub(x, maxOf(x))
	scale(float32(1/sum), x)
}

// SoftmaxRows applies Softmax to each of the first cols elements of the rows
// rows of the row-major matrix x with row stride ld. It panics if ld < cols
// or x is too short.
func SoftmaxRows(rows, cols int, x []float32, ld int) {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("kernels: SoftmaxRows: negative dimension %d×%d", rows, cols))
	}
	checkMatrix("x", rows, cols, x, ld)
	for i := range rows {
		Softmax(x[i*ld : i*ld+cols])
	}
}

// dotGeneric is the portable implementation of Dot.
func dotGeneric(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyGeneric is the portable implementation of Axpy.
func axpyGeneric(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// scaleGeneric is the portable implementation of Scale.
func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// maxOfGeneric is the portable implementation of maxOf: the largest element
// of a non-empty x.
func maxOfGeneric(x []float32) float32 {
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	return mx
}

// expSubGeneric is the portable implementation of expSub: it replaces x[i]
// by e^(x[i]-mx) and returns the sum of the results in float64.
func expSubGeneric(x []float32, mx float32) float64 {
	var sum float64
	for i, v := range x {
		e := expf(v - mx)
		x[i] = e
		sum += float64(e)
	}
	return sum
}

// expf returns e^x in float32 with an error below 2 ulp for normal results.
// Results that would be subnormal are flushed to zero; expf(-Inf) = 0,
// expf(+Inf) = +Inf and expf(NaN) = NaN.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		// ln2 split into a part exactly representable with few bits and a
		// remainder (Cody–Waite reduction).
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
		maxX  = 88.72283935546875 // largest x with e^x < MaxFloat32
		minX  = -87.33654475      // e^x is subnormal below this
	)
	switch {
	case x != x:
		return x
	case x > maxX:
		return float32(math.Inf(1))
	case x < minX:
		return 0
	}
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi
	r -= n * ln2lo
	// e^r on |r| ≤ ln2/2 by a degree-6 polynomial (Cephes expf
	// coefficients).
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	e := p*r*r + r + 1
	// Multiply by 2^n as 2^h · 2^(n-h) so that both factors are normal for
	// every n in [-126, 128].
	h := int32(n) / 2
	s1 := math.Float32frombits(uint32(127+h) << 23)
	s2 := math.Float32frombits(uint32(127+int32(n)-h) << 23)
	return e * s1 * s2
}
