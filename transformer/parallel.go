package transformer

import (
	"sync"
	"sync/atomic"
)

// forChunks splits [0, n) into at most workers contiguous chunks of at least
// minChunk items and runs fn(chunk, lo, hi) on each concurrently. It returns
// the number of chunks used; chunk indices are 0..chunks−1.
func forChunks(workers, n, minChunk int, fn func(chunk, lo, hi int)) int {
	if n <= 0 {
		return 0
	}
	c := min(workers, (n+minChunk-1)/max(minChunk, 1))
	c = max(c, 1)
	if c == 1 {
		fn(0, 0, n)
		return 1
	}
	var wg sync.WaitGroup
	for i := range c {
		lo, hi := i*n/c, (i+1)*n/c
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	wg.Wait()
	return c
}

// forTasks runs fn(worker, i) for every i in [0, n) on at most workers
// goroutines, handing out tasks in order as workers become free. worker is
// in [0, workers) and lets fn use per-worker scratch space.
func forTasks(workers, n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	w := min(workers, n)
	if w <= 1 {
		for i := range n {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(k, i)
			}
		}()
	}
	wg.Wait()
}

// arena hands out float32 buffers and takes them all back at reset, so that
// a pass repeated with the same shapes reuses its memory. Buffers are not
// cleared.
type arena struct {
	bufs [][]float32
	next int
}

// alloc returns a buffer of n elements with unspecified contents.
func (a *arena) alloc(n int) []float32 {
	if a.next < len(a.bufs) && cap(a.bufs[a.next]) >= n {
		b := a.bufs[a.next][:n]
		a.next++
		return b
	}
	b := make([]float32, n)
	if a.next < len(a.bufs) {
		a.bufs[a.next] = b
	} else {
		a.bufs = append(a.bufs, b)
	}
	a.next++
	return b
}

// zeros returns a cleared buffer of n elements.
func (a *arena) zeros(n int) []float32 {
	b := a.alloc(n)
	clear(b)
	return b
}

// reset makes every buffer available again.
func (a *arena) reset() { a.next = 0 }
