package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/vlora-convert/vlora-convert/model"
)

// stageStat is the wall time and peak memory of one stage of a command, as
// the --json summaries report them.
type stageStat struct {
	Name string  `json:"name"`
	Wall float64 `json:"wall_s"`
	// PeakRSS is the largest resident set of the process during the stage,
	// in MiB: the kernel's high-water mark, reset when the stage starts
	// (Linux); where it cannot be reset it is the peak since the process
	// started, and 0 where it cannot be read.
	PeakRSS float64 `json:"peak_rss_mib"`
}

// stageClock records stageStats in the order the stages finish. Stages may
// nest (evaluation runs inside training); an enclosing stage's figures
// include those of the stages inside it. A nil *stageClock runs stages
// without recording them.
type stageClock struct {
	stats []stageStat
	// open holds the peak RSS seen so far by each running stage, outermost
	// first, for the parts of it that nested stages' resets hid.
	open []float64
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
	c.raise(peakRSSMiB())
	resetPeakRSS()
	c.open = append(c.open, 0)
	t0 := time.Now()
	done := false
	return func() {
		if done {
			return
		}
		done = true
		peak := max(peakRSSMiB(), c.open[len(c.open)-1])
		c.open = c.open[:len(c.open)-1]
		c.raise(peak)
		c.stats = append(c.stats, stageStat{Name: name, Wall: time.Since(t0).Seconds(), PeakRSS: peak})
	}
}

// raise records peak in every running stage.
func (c *stageClock) raise(peak float64) {
	for i := range c.open {
		c.open[i] = max(c.open[i], peak)
	}
}

// resetPeakRSS resets the kernel's resident-set high-water mark of this
// process (writing 5 to /proc/self/clear_refs, Linux 4.0 and later); it does
// nothing elsewhere.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMiB returns VmHWM from /proc/self/status in MiB, or 0 where it
// cannot be read.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
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
