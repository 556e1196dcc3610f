package transformer

import "github.com/vlora-convert/vlora-convert/internal/kernels"

// gemmOpts returns the Sgemm options for a pass using workers goroutines.
func gemmOpts(workers int) kernels.Options { return kernels.Options{Threads: workers} }

// forward computes y = x·Wᵀ + beta·y for the n rows of x (row stride ldx)
// into y (row stride ldy), without the bias.
func (l *linear) forward(o kernels.Options, n int, x []float32, ldx int, y []float32, ldy int, beta float32) {
	if l.op != nil {
		l.op.MulT(o.Threads, n, x, ldx, y, ldy, beta)
		return
	}
	if l.inOut {
		o.Sgemm(false, false, n, l.out, l.in, 1, x, ldx, l.w.Data, l.out, beta, y, ldy)
	} else {
		o.Sgemm(false, true, n, l.out, l.in, 1, x, ldx, l.w.Data, l.in, beta, y, ldy)
	}
}

// backwardInput computes dx = dy·W + beta·dx for n rows.
func (l *linear) backwardInput(o kernels.Options, n int, dy []float32, ldy int, dx []float32, lddx int, beta float32) {
	if l.inOut {
		o.Sgemm(false, true, n, l.in, l.out, 1, dy, ldy, l.w.Data, l.out, beta, dx, lddx)
	} else {
		o.Sgemm(false, false, n, l.in, l.out, 1, dy, ldy, l.w.Data, l.in, beta, dx, lddx)
	}
}

// backwardWeight adds the weight gradient dyᵀ·x (stored like W) to dw.
func (l *linear) backwardWeight(o kernels.Options, n int, x []float32, ldx int, dy []float32, ldy int, dw []float32) {
	if l.inOut {
		o.Sgemm(true, false, l.in, l.out, n, 1, x, ldx, dy, ldy, 1, dw, l.out)
	} else {
		o.Sgemm(true, false, l.out, l.in, n, 1, dy, ldy, x, ldx, 1, dw, l.in)
	}
}

// addRows adds v to the first len(v) columns of each of the n rows of y
// (row stride ld).
func addRows(workers, n int, y []float32, ld int, v []float32) {
	forChunks(workers, n, 256, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			r := y[i*ld : i*ld+len(v)]
			for j, b := range v {
				r[j] += b
			}
		}
	})
}

// columnSums adds to dst the sums over the n rows of dy (row stride ld) of
// the columns off..off+len(dst)−1, accumulating in float64.
func columnSums(workers, n int, dy []float32, ld, off int, dst []float32) {
	w := len(dst)
	parts := make([][]float64, workers)
	chunks := forChunks(workers, n, 256, func(c, lo, hi int) {
		s := make([]float64, w)
		for i := lo; i < hi; i++ {
			r := dy[i*ld+off : i*ld+off+w]
			for j, v := range r {
				s[j] += float64(v)
			}
		}
		parts[c] = s
	})
	for c := range chunks {
		for j, v := range parts[c] {
			dst[j] += float32(v)
		}
	}
}
