package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vlora-convert/vlora-convert/model"
)

// stageStat is the wall time and peak memory of one stage of a command, as
// the --json summaries report them.
type stageStat struct {
	Name string  `json:"name"`
	Wall float64 `json:"wall_s"`
	// PeakRSS is the largest resident set of the process sampled during
	// the stage (every rssSampleInterval, and at its start and end), in
	// MiB; 0 where it cannot be read (Linux /proc only). The process never
	// resets its own high-water mark, so /usr/bin/time and other outside
	// tools still see the whole run's peak.
	PeakRSS float64 `json:"peak_rss_mib"`
}

// rssSampleInterval is how often the resident set is sampled while a
// stage runs: short against any stage's growth of memory, long against the
// cost of reading /proc/self/status (a few microseconds).
const rssSampleInterval = 20 * time.Millisecond

// stageClock records stageStats in the order the stages finish. Stages may
// nest (evaluation runs inside training); an enclosing stage's figures
// include those of the stages inside it. A nil *stageClock runs stages
// without recording them.
type stageClock struct {
	stats []stageStat
	mu    sync.Mutex
	// open holds the peak RSS sampled so far by each running stage.
	open []*float64
	// stopSampler ends the sampling goroutine; nil when none runs.
	stopSampler func()
}

// run runs f as the stage name and records its wall time and peak RSS.
func (c *stageClock) run(name string, f func() error) error {
	stop := c.start(name)
	err := f()
	stop()
	return err
}

// start begins the stage name; the returned function ends it (once; later
// calls do nothing) and records its wall time and peak RSS. A stage ended
// before the next one starts does not enclose it.
func (c *stageClock) start(name string) (stop func()) {
	if c == nil {
		return func() {}
	}
	peak := new(float64)
	*peak = rssMiB()
	c.mu.Lock()
	c.open = append(c.open, peak)
	if c.stopSampler == nil {
		c.stopSampler = c.sample()
	}
	c.mu.Unlock()
	t0 := time.Now()
	done := false
	return func() {
		if done {
			return
		}
		done = true
		c.raise(rssMiB())
		c.mu.Lock()
		c.open = slices.DeleteFunc(c.open, func(p *float64) bool { return p == peak })
		var stopSampler func()
		if len(c.open) == 0 {
			stopSampler, c.stopSampler = c.stopSampler, nil
		}
		c.stats = append(c.stats, stageStat{Name: name, Wall: time.Since(t0).Seconds(), PeakRSS: *peak})
		c.mu.Unlock()
		if stopSampler != nil {
			stopSampler()
		}
	}
}

// sample starts a goroutine that raises the open stages' peaks every
// rssSampleInterval, and returns the function that stops it.
func (c *stageClock) sample() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(rssSampleInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.raise(rssMiB())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// raise records rss in every running stage.
func (c *stageClock) raise(rss float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.open {
		*p = max(*p, rss)
	}
}

// rssMiB returns the current resident set (VmRSS of /proc/self/status) in
// MiB, or 0 where it cannot be read.
func rssMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0
			}
			return kib / 1024
		}
	}
	return 0
}

// streamedGCPercent is the garbage collector's target when a model is
// streamed: the heap is then mostly large pointer-free float32 slices,
// which cost the collector little to scan, and the default of 100 would let
// the heap grow to twice the live model before a collection.
const streamedGCPercent = 25

// tightenGC lowers the garbage collector's target to streamedGCPercent when
// any of models is streamed, unless GOGC is set.
func tightenGC(models ...*model.Model) {
	if os.Getenv("GOGC") != "" {
		return
	}
	for _, m := range models {
		if m != nil && m.Net.Streamed() {
			debug.SetGCPercent(streamedGCPercent)
			return
		}
	}
}
