package distill

import "math"

// adamW is Adam with decoupled weight decay (Loshchilov & Hutter) and bias
// correction. Moments live in each param.
type adamW struct {
	beta1, beta2, eps, weightDecay float64
	step                           int
}

// update applies one step with learning rate lr to every param.
func (o *adamW) update(params []*param, lr float64) {
	o.step++
	c1 := 1 - math.Pow(o.beta1, float64(o.step))
	c2 := 1 - math.Pow(o.beta2, float64(o.step))
	b1, b2 := float32(o.beta1), float32(o.beta2)
	invC2 := float32(1 / c2)
	eps := float32(o.eps)
	for _, p := range params {
		plr := lr
		if p.lrScale > 0 {
			plr *= p.lrScale
		}
		stepSize := float32(plr / c1)
		decay := float32(1 - plr*o.weightDecay)
		m, v, g, w := p.m, p.v, p.grad, p.data
		for i := range w {
			gi := g[i]
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			vh := float32(math.Sqrt(float64(v[i] * invC2)))
			w[i] = w[i]*decay - stepSize*m[i]/(vh+eps)
		}
	}
}

// clipGradNorm scales all gradients so that their global L2 norm is at most
// maxNorm, and returns the norm before clipping. maxNorm ≤ 0 only measures.
func clipGradNorm(params []*param, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		for _, g := range p.grad {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > maxNorm {
		s := float32(maxNorm / norm)
		for _, p := range params {
			for i := range p.grad {
				p.grad[i] *= s
			}
		}
	}
	return norm
}
