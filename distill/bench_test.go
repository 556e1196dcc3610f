package distill

import (
	"context"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// BenchmarkDistillStepBytellama times whole distillation steps on bytellama
// (K=8, r=32, base mean, batch 16×256): teacher forward (never cached, as in
// the PyTorch peer), student materialization, forward, KL, backward, chaining
// onto factors and AdamW. Reports tokens/s.
//
//	go test ./distill -run '^$' -bench DistillStepBytellama -benchtime 20x
func BenchmarkDistillStepBytellama(b *testing.B) {
	for _, tc := range []struct {
		name   string
		base   vlora.BaseMode
		hidden float64
	}{
		{"mean-kl", vlora.BaseMean, 0},
		{"first-kl", vlora.BaseFirst, 0},
		{"mean-kl+hidden", vlora.BaseMean, 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := testenv.SharedModel(b, "bytellama")
			data, err := dataset.Load(context.Background(), testenv.Shared(b, "data/stdlib-bytes/calib.safetensors"), dataset.LoadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			out := b.TempDir()
			opt := convert.Options{}
			opt.Base = tc.base
			if _, err := convert.Compress(context.Background(), dir, out, opt); err != nil {
				b.Fatal(err)
			}
			vm, err := vlora.Load(out)
			if err != nil {
				b.Fatal(err)
			}
			teacher, err := model.LoadDense(dir)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			res, err := Run(context.Background(), teacher, vm, data, Options{
				Steps: b.N, Batch: 16, HiddenWeight: tc.hidden, ClipNorm: 1, TeacherCacheBytes: -1,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res.Tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
