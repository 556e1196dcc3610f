package verify

import (
	"math"
	"sort"
)

// logSoftmax writes log softmax(x) into dst, in float64 for accuracy.
func logSoftmax(dst []float64, x []float32) {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	for i, v := range x {
		dst[i] = float64(v) - lse
	}
}

// KL returns KL(p‖q) = Σ p (log p − log q) for log-probabilities lp, lq.
func KL(lp, lq []float64) float64 {
	var s float64
	for i, a := range lp {
		if a > -700 {
			s += math.Exp(a) * (a - lq[i])
		}
	}
	return math.Max(s, 0)
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// percentile returns the q-quantile (0..1) of sorted values by linear
// interpolation between closest ranks.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	f := pos - float64(lo)
	return sorted[lo]*(1-f) + sorted[hi]*f
}

// distribution summarises per-position values.
type distribution struct {
	mean, p95, p99, max float64
}

func summarise(v []float64) distribution {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	d := distribution{p95: percentile(s, 0.95), p99: percentile(s, 0.99)}
	if len(s) > 0 {
		d.mean = sum / float64(len(s))
		d.max = s[len(s)-1]
	}
	return d
}

// relAccum accumulates ‖a − b‖² and ‖b‖² for a relative error.
type relAccum struct{ num, den float64 }

func (r *relAccum) add(a, b []float32) {
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		r.num += d * d
		r.den += float64(b[i]) * float64(b[i])
	}
}

func (r *relAccum) value() float64 {
	if r.den == 0 {
		return math.Sqrt(r.num)
	}
	return math.Sqrt(r.num / r.den)
}
