package stage

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLineReporter(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	r := newLineReporter(&buf, "distill", 10*time.Second, func() string { return "loss 0.5000" }, now)
	steps := []struct {
		at   time.Duration // since the start
		done int
	}{{2 * time.Second, 10}, {9 * time.Second, 45}, {10 * time.Second, 50}, {15 * time.Second, 75}, {21 * time.Second, 105}}
	for _, s := range steps {
		clock = time.Unix(0, 0).Add(s.at)
		r.Report(Progress{Stage: Distill, Done: s.done, Total: 300})
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// Lines at 10 s and at 21 s, none in between; the rate counts from
	// the first report (10 done at 2 s): 40 in 8 s, then 95 in 19 s.
	want := []string{
		"distill: 50/300 (17%), 5/s, ETA 50s, loss 0.5000",
		"distill: 105/300 (35%), 5/s, ETA 39s, loss 0.5000",
	}
	if len(got) != len(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestLineReporterShortRun(t *testing.T) {
	var buf bytes.Buffer
	r := NewLineReporter(&buf, "compress", 0, nil)
	for i := range 100 {
		r.Report(Progress{Done: i, Total: 100})
	}
	if buf.Len() != 0 {
		t.Errorf("a run shorter than the interval printed %q", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHeartbeat(t *testing.T) {
	var buf syncBuffer
	stop := Heartbeat(&buf, "calibrate", 20*time.Millisecond)
	time.Sleep(110 * time.Millisecond)
	stop()
	stop() // a second call does nothing
	n := strings.Count(buf.String(), "calibrate: running, ")
	if n < 2 {
		t.Errorf("%d heartbeat lines in 110 ms at 20 ms, want at least 2: %q", n, buf.String())
	}
	after := buf.String()
	time.Sleep(50 * time.Millisecond)
	if buf.String() != after {
		t.Errorf("heartbeat printed after stop")
	}
}
