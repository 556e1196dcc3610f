package transformer

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// benchTokens loads the first rows×256 calibration tokens of the byte
// corpus.
func benchTokens(b *testing.B, rows int) *Input {
	b.Helper()
	f, err := formats.Open(filepath.Join(sharedDir(b, "data/stdlib-bytes"), "calib.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Info("tokens")
	ids, err := f.ReadInts("tokens")
	if err != nil {
		b.Fatal(err)
	}
	T := info.Shape[1]
	return &Input{Batch: rows, Seq: T, IDs: ids[:rows*T]}
}

// BenchmarkForwardBytellama measures inference throughput of bytellama at
// batch 32×256 (the PyTorch 2-thread CPU figure is 4,849 tokens/s).
func BenchmarkForwardBytellama(b *testing.B) {
	m, err := LoadCheckpoint(sharedDir(b, "models/bytellama"))
	if err != nil {
		b.Fatal(err)
	}
	in := benchTokens(b, 32)
	if _, err := m.Forward(in, Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := m.Forward(in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	reportThroughput(b, in.Batch*in.Seq, cpuTime()-cpu0)
}

// cpuTime returns the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportThroughput reports tokens per wall-clock second and the CPU seconds
// per iteration; on a shared machine the latter is the steadier figure.
func reportThroughput(b *testing.B, tokensPerOp int, cpu time.Duration) {
	b.ReportMetric(float64(b.N*tokensPerOp)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}
