package stage

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultLineInterval is the least time between two lines of a
// LineReporter (10 s).
const DefaultLineInterval = 10 * time.Second

// LineReporter prints a stage's progress as plain lines, at most one per
// interval: the stage, done/total, the rate and the time left, e.g.
//
//	distill: 120/300 (40%), 2.05/s, ETA 1m28s
//
// It is the progress display for an error stream that is not a terminal
// (a log file, a pipe, CI), where a redrawn bar would print nothing useful.
// Runs shorter than the interval print nothing. Safe for concurrent use.
type LineReporter struct {
	w        io.Writer
	name     string
	interval time.Duration
	extra    func() string
	now      func() time.Time

	mu        sync.Mutex
	start     time.Time
	last      time.Time
	done, tot int64
	// firstDone and first are the units done at the first report and its
	// time: the rate counts from there, so that units done before (a
	// resumed run's) do not inflate it.
	firstDone  int64
	first      time.Time
	startedSet bool
}

// NewLineReporter returns a LineReporter writing lines named name to w
// every interval (DefaultLineInterval when 0); extra, when not nil, adds
// text to each line (a loss, a throughput).
func NewLineReporter(w io.Writer, name string, interval time.Duration, extra func() string) *LineReporter {
	return newLineReporter(w, name, interval, extra, time.Now)
}

func newLineReporter(w io.Writer, name string, interval time.Duration, extra func() string, now func() time.Time) *LineReporter {
	if interval <= 0 {
		interval = DefaultLineInterval
	}
	t := now()
	return &LineReporter{w: w, name: name, interval: interval, extra: extra, now: now, start: t, last: t}
}

// Report records a stage's progress, printing a line when the interval
// has passed since the last.
func (r *LineReporter) Report(p Progress) {
	r.mu.Lock()
	r.tot = int64(p.Total)
	r.mu.Unlock()
	r.Set(int64(p.Done))
}

// SetTotal sets the number of units.
func (r *LineReporter) SetTotal(total int64) {
	r.mu.Lock()
	r.tot = total
	r.mu.Unlock()
}

// Set records done units, printing a line when the interval has passed
// since the last.
func (r *LineReporter) Set(done int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.now()
	if !r.startedSet {
		r.firstDone, r.first, r.startedSet = done, t, true
	}
	r.done = done
	if t.Sub(r.last) < r.interval {
		return
	}
	r.last = t
	fmt.Fprintln(r.w, r.line(t))
}

// line formats the progress at time t.
func (r *LineReporter) line(t time.Time) string {
	s := fmt.Sprintf("%s: %d", r.name, r.done)
	if r.tot > 0 {
		s += fmt.Sprintf("/%d (%.0f%%)", r.tot, 100*float64(r.done)/float64(r.tot))
	}
	elapsed := t.Sub(r.first).Seconds()
	if rate := float64(r.done-r.firstDone) / elapsed; elapsed > 0 && rate > 0 {
		s += fmt.Sprintf(", %.3g/s", rate)
		if r.tot > r.done {
			eta := time.Duration(float64(r.tot-r.done) / rate * float64(time.Second))
			s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
		}
	}
	if r.extra != nil {
		if e := r.extra(); e != "" {
			s += ", " + e
		}
	}
	return s
}

// Heartbeat prints "name: running, 40s so far" to w every interval
// (DefaultLineInterval when 0) until stop is called: the plain progress
// of a stage that cannot count its work. Runs shorter than the interval
// print nothing.
func Heartbeat(w io.Writer, name string, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = DefaultLineInterval
	}
	start := time.Now()
	t := time.NewTicker(interval)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(w, "%s: running, %s so far\n", name, now.Sub(start).Round(time.Second))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.Stop()
			close(done)
			<-finished
		})
	}
}
