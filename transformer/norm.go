package transformer

import "math"

// normForward normalises the n rows of width h of x into y (which may alias
// x). When mean and rstd are not nil it stores each row's mean (LayerNorm
// only) and reciprocal standard deviation for the backward pass. Statistics
// are accumulated in float64.
func normForward(nm *norm, workers, n, h int, x, y, mean, rstd []float32) {
	w := nm.w.Data[:h]
	var b []float32
	if nm.b != nil {
		b = nm.b.Data[:h]
	}
	eps := float64(nm.eps)
	forChunks(workers, n, 64, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			xr := x[i*h : i*h+h]
			yr := y[i*h : i*h+h]
			if nm.kind == RMSNorm {
				r := float32(1 / math.Sqrt(sumSquares(xr)/float64(h)+eps))
				scaleMul(xr, w, yr, r)
				if rstd != nil {
					rstd[i] = r
				}
				continue
			}
			var s float64
			for _, v := range xr {
				s += float64(v)
			}
			mu := s / float64(h)
			var ss float64
			for _, v := range xr {
				d := float64(v) - mu
				ss += d * d
			}
			r := float32(1 / math.Sqrt(ss/float64(h)+eps))
			m32 := float32(mu)
			if b != nil {
				for j, v := range xr {
					yr[j] = (v-m32)*r*w[j] + b[j]
				}
			} else {
				for j, v := range xr {
					yr[j] = (v - m32) * r * w[j]
				}
			}
			if rstd != nil {
				rstd[i] = r
				mean[i] = m32
			}
		}
	})
}

// normBackward propagates dy through the normalisation of the rows of x
// whose statistics normForward stored. It adds the parameter gradients to dw
// (and db for a LayerNorm with bias) and writes dx, or adds to it when
// accumulate is set. dx may alias dy when accumulate is not set.
func normBackward(nm *norm, workers, n, h int, x, mean, rstd, dy, dx []float32, accumulate bool, dw, db []float32) {
	w := nm.w.Data[:h]
	ln := nm.kind == LayerNorm
	parts := make([][]float64, workers)
	chunks := forChunks(workers, n, 64, func(c, lo, hi int) {
		part := make([]float64, 2*h)
		pw, pb := part[:h], part[h:]
		g := make([]float32, h)
		xh := make([]float32, h)
		for i := lo; i < hi; i++ {
			xr := x[i*h : i*h+h]
			dyr := dy[i*h : i*h+h]
			dxr := dx[i*h : i*h+h]
			r := rstd[i]
			var mu float32
			if ln {
				mu = mean[i]
			}
			var sg, sgx float64
			for j, v := range xr {
				xhat := (v - mu) * r
				gj := dyr[j] * w[j]
				xh[j], g[j] = xhat, gj
				sg += float64(gj)
				sgx += float64(gj) * float64(xhat)
				pw[j] += float64(dyr[j]) * float64(xhat)
				pb[j] += float64(dyr[j])
			}
			a := float32(sg / float64(h))
			if !ln {
				a = 0
			}
			s := float32(sgx / float64(h))
			if accumulate {
				for j := range dxr {
					dxr[j] += r * (g[j] - a - xh[j]*s)
				}
			} else {
				for j := range dxr {
					dxr[j] = r * (g[j] - a - xh[j]*s)
				}
			}
		}
		parts[c] = part
	})
	for c := range chunks {
		pw, pb := parts[c][:h], parts[c][h:]
		for j := range h {
			dw[j] += float32(pw[j])
		}
		if db != nil {
			for j := range h {
				db[j] += float32(pb[j])
			}
		}
	}
}
