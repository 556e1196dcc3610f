package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The bands of a one-row product run on persistent band workers rather
// than on a goroutine started per product: a decoding step makes some 150
// products of a fraction of a millisecond each, and a goroutine start and
// a futex wake per product leave a core idle for a large part of the step.
//
// A band worker, having run a band, spins for at most bandSpin waiting for
// the next one (the serial work between two products of a step is mostly
// shorter), then parks on a channel; after bandIdle parked with nothing to
// do it exits, so that a process that stopped multiplying keeps no
// goroutine. The caller of inBands, having run its own band, waits for the
// others the same way: a bounded spin, then a channel. Spins yield the
// processor (runtime.Gosched) between checks, so that on a loaded machine
// they give way to runnable goroutines.

const (
	// bandSpin bounds the time a band worker or a waiting caller spins
	// before parking. In paired decoding runs of the 1.1 B int4 VLoRA
	// file on a quiet machine, 150 µs took 19% less wall time than 50 µs
	// (and 8% less CPU time: fewer parks and wake-ups), 400 µs 4% less
	// than 150 µs at the same CPU time, 20 µs 9% more than 50 µs.
	bandSpin = 400 * time.Microsecond
	// bandIdle is how long a parked band worker waits for a band before it
	// exits.
	bandIdle = 100 * time.Millisecond
)

// Worker states.
const (
	workerRunning int32 = iota // looking for work or running it
	workerParked               // blocked on wake or its idle timer
	workerExited               // its goroutine has returned
)

// bandGroup is one inBands call: the function, the bands still running on
// workers and the caller's parking state.
type bandGroup struct {
	f       func(r0, r1 int)
	pending atomic.Int32
	// waiter is workerParked while the caller is blocked on done.
	waiter atomic.Int32
	done   chan struct{}
}

// bandTask is one band of a group.
type bandTask struct {
	g      *bandGroup
	r0, r1 int
}

// bandWorker is a persistent goroutine that runs the bands handed to it
// through task.
type bandWorker struct {
	busy  atomic.Bool // held by the one inBands call using the worker
	state atomic.Int32
	task  atomic.Pointer[bandTask]
	wake  chan struct{}
}

var bandWorkers struct {
	mu sync.Mutex
	ws []*bandWorker
}

// acquireWorkers returns up to n band workers reserved for the caller.
func acquireWorkers(n int, dst []*bandWorker) []*bandWorker {
	bandWorkers.mu.Lock()
	defer bandWorkers.mu.Unlock()
	for _, w := range bandWorkers.ws {
		if len(dst) == n {
			return dst
		}
		if w.busy.CompareAndSwap(false, true) {
			dst = append(dst, w)
		}
	}
	for len(dst) < n {
		w := &bandWorker{wake: make(chan struct{}, 1)}
		w.busy.Store(true)
		w.state.Store(workerExited)
		bandWorkers.ws = append(bandWorkers.ws, w)
		dst = append(dst, w)
	}
	return dst
}

// submit hands t to the reserved worker w, waking or starting its
// goroutine as needed.
func (w *bandWorker) submit(t *bandTask) {
	w.task.Store(t)
	if w.state.CompareAndSwap(workerParked, workerRunning) {
		w.wake <- struct{}{}
		return
	}
	// Only the worker's reserver starts it, so no one else moves it out
	// of workerExited.
	if w.state.Load() == workerExited {
		w.state.Store(workerRunning)
		go w.loop()
	}
}

// loop is the worker's goroutine.
func (w *bandWorker) loop() {
	idle := time.NewTimer(bandIdle)
	defer idle.Stop()
	for {
		if t := w.task.Swap(nil); t != nil {
			t.run()
			continue
		}
		if spinUntil(func() bool { return w.task.Load() != nil }) {
			continue
		}
		w.state.Store(workerParked)
		if w.task.Load() != nil {
			if !w.state.CompareAndSwap(workerParked, workerRunning) {
				<-w.wake // the submitter took us out of parked and sends
			}
			continue
		}
		idle.Reset(bandIdle)
		select {
		case <-w.wake:
		case <-idle.C:
			if w.state.CompareAndSwap(workerParked, workerExited) {
				return
			}
			<-w.wake
		}
	}
}

// run computes the band and signals its group.
func (t *bandTask) run() {
	g := t.g
	g.f(t.r0, t.r1)
	if g.pending.Add(-1) == 0 && g.waiter.CompareAndSwap(workerParked, workerRunning) {
		g.done <- struct{}{}
	}
}

// spinUntil calls cond, yielding the processor between calls, until it
// reports true or bandSpin has passed, and returns its last result.
func spinUntil(cond func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if i&15 == 15 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > bandSpin {
				return false
			}
			runtime.Gosched()
		}
	}
}

// inBands runs f on bands contiguous ranges of [0, rows) — band b being
// [rows·b/bands, rows·(b+1)/bands) — the last on the calling goroutine and
// the others on band workers, and returns when all are done. Which
// goroutine runs a band does not change what f computes.
func inBands(rows, bands int, f func(r0, r1 int)) {
	if bands <= 1 {
		f(0, rows)
		return
	}
	var buf [8]*bandWorker
	ws := acquireWorkers(bands-1, buf[:0])
	// A group is not reused: a worker may still be reading it after
	// the caller has seen its band done.
	g := &bandGroup{f: f}
	g.pending.Store(int32(bands - 1))
	tasks := make([]bandTask, bands-1)
	for b, w := range ws {
		tasks[b] = bandTask{g: g, r0: rows * b / bands, r1: rows * (b + 1) / bands}
		w.submit(&tasks[b])
	}
	f(rows*(bands-1)/bands, rows)
	if !spinUntil(func() bool { return g.pending.Load() == 0 }) {
		g.done = make(chan struct{}, 1) // published by the store below
		g.waiter.Store(workerParked)
		if g.pending.Load() != 0 || !g.waiter.CompareAndSwap(workerParked, workerRunning) {
			<-g.done // the last band's worker took us out of parked and sends
		}
	}
	for _, w := range ws {
		w.busy.Store(false)
	}
}
