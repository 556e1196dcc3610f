package transformer

import (
	"math/rand/v2"
	"path/filepath"
	"runtime"
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
	m, err := loadDir(b, sharedDir(b, "models/bytellama"))
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

// reportThroughput reports tokens per wall-clock second and the CPU seconds
// per iteration; on a shared machine the latter is the steadier figure.
func reportThroughput(b *testing.B, tokensPerOp int, cpu time.Duration) {
	b.ReportMetric(float64(b.N*tokensPerOp)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkTrainStepBytellama measures one distillation step on bytellama
// at batch 16×256: teacher forward, student training forward, KL(teacher ‖
// student) and its gradient, and the student backward pass (the PyTorch
// 2-thread CPU figure for a step, including Adam, is 1,448 tokens/s).
func BenchmarkTrainStepBytellama(b *testing.B) {
	dir := sharedDir(b, "models/bytellama")
	teacher, err := loadDir(b, dir)
	if err != nil {
		b.Fatal(err)
	}
	student, err := loadDir(b, dir)
	if err != nil {
		b.Fatal(err)
	}
	in := benchTokens(b, 16)
	tr := student.NewTrainer()
	V := teacher.Config.VocabSize
	dlogits := make([]float32, in.Batch*in.Seq*V)
	step := func() {
		tout, err := teacher.Forward(in, Options{})
		if err != nil {
			b.Fatal(err)
		}
		sout, err := tr.Forward(in, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := KLDiv(tout.Logits, sout.Logits, V, 1, dlogits); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Backward(&OutputGrad{Logits: dlogits}); err != nil {
			b.Fatal(err)
		}
	}
	step()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		step()
	}
	reportThroughput(b, in.Batch*in.Seq, cpuTime()-cpu0)
}

// BenchmarkAttention measures the fused attention at bytellama's shape
// (batch 16×256, 8 query heads sharing 4 key/value heads of 16).
func BenchmarkAttention(b *testing.B) {
	g := attnGeom{B: 16, T: 256, nh: 8, nkv: 4, hd: 16, causal: true, scale: 0.25, block: attnBlock}
	g.ld, g.ldo = (g.nh+2*g.nkv)*g.hd, g.nh*g.hd
	rng := rand.New(rand.NewPCG(1, 2))
	qkv := randSlice(rng, g.B*g.T*g.ld, 1)
	out := make([]float32, g.B*g.T*g.ldo)
	lse := make([]float32, g.B*g.nh*g.T)
	dout := randSlice(rng, len(out), 1)
	dqkv := make([]float32, len(qkv))
	workers := runtime.GOMAXPROCS(0)
	b.Run("forward", func(b *testing.B) {
		for range b.N {
			attentionForward(g, workers, qkv, out, lse)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for range b.N {
			attentionBackward(g, workers, qkv, out, lse, dout, dqkv)
		}
	})
}
