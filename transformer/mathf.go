package transformer

import "math"

// expf returns e**x in float32 with a relative error below 2e-7 on the range
// where the result is a normal float32. Arguments below −87.3 give 0 and
// above 88.7 give +Inf; NaN propagates. It is the Cephes single-precision
// algorithm: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts for an
// exact reduction), a degree-7 polynomial for e**r and an exponent-bit
// scaling by 2**n.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	if !(x > -87.3) { // also catches NaN
		if x != x {
			return x
		}
		return 0
	}
	if x > 88.7 {
		return float32(math.Inf(1))
	}
	t := x*log2e + 0.5
	n := int32(t)
	if float32(n) > t { // floor for negative t
		n--
	}
	fn := float32(n)
	r := x - fn*ln2hi - fn*ln2lo
	z := r * r
	y := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*z + r + 1)
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// sigmoidf returns 1/(1+e**−x).
func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }

// tanhf returns tanh(x) as 1 − 2/(e**2x + 1), accurate to about 1e-7
// absolutely.
func tanhf(x float32) float32 {
	if x > 9 {
		return 1
	}
	if x < -9 {
		return -1
	}
	return 1 - 2/(expf(2*x)+1)
}

// Constants of the GELU approximations.
const (
	geluC      = 0.7978845608028654 // √(2/π)
	geluA      = 0.044715
	invSqrt2   = 0.7071067811865476
	invSqrt2Pi = 0.3989422804014327 // 1/√(2π)
)

// actValue returns f(x) for the activation.
func actValue(a Activation, x float32) float32 {
	switch a {
	case SiLU:
		return x * sigmoidf(x)
	case GELUTanh:
		return 0.5 * x * (1 + tanhf(geluC*(x+geluA*x*x*x)))
	case GELU:
		return float32(0.5 * float64(x) * (1 + math.Erf(float64(x)*invSqrt2)))
	case ReLU:
		return max(x, 0)
	}
	panic("transformer: unknown activation")
}

// actValueGrad returns f(x) and f'(x) for the activation.
func actValueGrad(a Activation, x float32) (f, df float32) {
	switch a {
	case SiLU:
		s := sigmoidf(x)
		return x * s, s * (1 + x*(1-s))
	case GELUTanh:
		th := tanhf(geluC * (x + geluA*x*x*x))
		return 0.5 * x * (1 + th), 0.5*(1+th) + 0.5*x*(1-th*th)*geluC*(1+3*geluA*x*x)
	case GELU:
		xd := float64(x)
		cdf := 0.5 * (1 + math.Erf(xd*invSqrt2))
		return float32(xd * cdf), float32(cdf + xd*invSqrt2Pi*math.Exp(-0.5*xd*xd))
	case ReLU:
		if x > 0 {
			return x, 1
		}
		return 0, 0
	}
	panic("transformer: unknown activation")
}
