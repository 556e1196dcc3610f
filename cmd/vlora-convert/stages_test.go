package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStageClockSamples checks that a stage's peak resident set is sampled
// while it runs (a 64 MiB buffer touched and dropped inside the stage
// shows in its peak), that nested stages are recorded in the order they
// end, and that the process's own high-water mark (VmHWM, which outside
// tools read) is never lowered.
func TestStageClockSamples(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status on this system")
	}
	// hwm is the kernel's high-water mark of the resident set, in MiB.
	hwm := func() float64 {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				return kib / 1024
			}
		}
		return 0
	}
	touch := func(n int) []byte {
		buf := make([]byte, n<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		return buf
	}
	// A high-water mark well above what the stages use, so that a reset
	// inside them would show as a drop.
	runtime.KeepAlive(touch(192))
	hwmBefore := hwm()
	var c stageClock
	debug.FreeOSMemory() // so that the buffer below is new resident memory
	before := rssMiB()
	const mib = 64
	err := c.run("outer", func() error {
		return c.run("inner", func() error {
			buf := touch(mib)
			time.Sleep(5 * rssSampleInterval)
			runtime.KeepAlive(buf)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.stats) != 2 || c.stats[0].Name != "inner" || c.stats[1].Name != "outer" {
		t.Fatalf("stats %+v, want inner then outer", c.stats)
	}
	// Half the buffer is the margin: pages may be returned or not yet
	// counted at the sample's moment, never half of them.
	for _, s := range c.stats {
		if s.PeakRSS < before+mib/2 {
			t.Errorf("%s: peak %.1f MiB, want at least %.1f (resident before %.1f)", s.Name, s.PeakRSS, before+mib/2, before)
		}
	}
	if c.stopSampler != nil || len(c.open) != 0 {
		t.Error("the sampler runs on with no stage open")
	}
	// The kernel folds each thread's resident-page count into the totals
	// in batches (64 pages a thread), so VmHWM may trail a VmRSS sample by
	// that much (and its reading moves with it): 1 MiB of slack, far below
	// a reset's drop.
	const slack = 1.0
	if h := hwm(); h < hwmBefore-slack || h < c.stats[0].PeakRSS-slack {
		t.Errorf("VmHWM %.1f MiB after the stages, %.1f before, inner peak %.1f: the high-water mark was lowered", h, hwmBefore, c.stats[0].PeakRSS)
	}
}
