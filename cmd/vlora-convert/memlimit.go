package main

import (
	"os"
	"runtime/debug"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// distillLiveBytes estimates the live memory of a streamed distillation of
// the student described by mf on batches of batch × seq tokens, by the
// formula of docs/benchmarks.md ("Memory of verify and distill"): the
// student in float32, gradient and AdamW moments of the trained tensors
// (bounded by the stored stack, plus the pass-through tensors with
// TrainAll), the teacher's pass-through tensors and the student's
// gradients of them, three blocks of float32 weights, and the activations
// of the step (recompute keeps one hidden vector per layer and token), and
// the teacher's log-probabilities of all items of seq tokens when they fit
// in distill.DefaultTeacherCacheBytes (the teacher then caches them).
func distillLiveBytes(mf *vlora.Manifest, hidden, inter, kv, vocab int, train distill.TrainSet, recompute bool, batch, seq, items int) float64 {
	c := mf.Counts
	out := float64(c.ParamsOriginal - c.StackOriginal)
	trained := float64(c.StackStored)
	if train == distill.TrainAll {
		trained += out
	}
	L := float64(mf.NumLayers)
	blk := float64(c.StackOriginal) / max(L, 1)
	h, i, k, v := float64(hidden), float64(inter), float64(kv), float64(vocab)
	tape := 7*h + 2*k + 3*i
	perToken := tape*L + 3*v + 3*(L+1)*h
	if recompute {
		perToken = h*L + tape + 3*v + 3*(L+1)*h
	}
	tokens := float64(batch) * float64(seq)
	cache := 4 * float64(items) * float64(seq) * v
	if cache > distill.DefaultTeacherCacheBytes {
		cache = 0
	}
	return 4*float64(c.ParamsStored) + 12*trained + 8*out + 12*blk + 4*perToken*tokens + cache
}

// distillMemoryHeadroom is the factor above the estimated live memory at
// which the soft memory limit of a streamed distillation is set: near it
// the collector runs more often instead of letting the heap grow by
// GOGC percent.
const distillMemoryHeadroom = 1.1

// limitDistillMemory sets a soft memory limit of distillMemoryHeadroom times
// the estimated live memory of a streamed distillation, unless GOMEMLIMIT
// is set or the estimate is not positive, and returns a function that
// restores the previous limit.
func limitDistillMemory(live float64) (restore func()) {
	if os.Getenv("GOMEMLIMIT") != "" || live <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(int64(live * distillMemoryHeadroom))
	return func() { debug.SetMemoryLimit(prev) }
}

// distillLimitFor returns the estimate of distillLiveBytes for a streamed
// teacher, or 0 when the teacher is resident (its memory is then the dense
// model's, outside the formula).
func distillLimitFor(mf *vlora.Manifest, teacher *model.Model, d *distillFlags, train *dataset.Dataset) float64 {
	if !teacher.Net.Streamed() || train == nil || teacher.Config == nil {
		return 0
	}
	cfg := teacher.Config
	h := cfg.Int("hidden_size", "n_embd", "d_model")
	heads := cfg.Int("num_attention_heads", "n_head")
	kvHeads := cfg.Int("num_key_value_heads")
	kv := h
	if heads > 0 && kvHeads > 0 {
		kv = h / heads * kvHeads
	}
	inter := cfg.Int("intermediate_size", "n_inner")
	if inter == 0 {
		inter = 4 * h
	}
	batch := d.batch
	if batch == 0 {
		batch = distill.DefaultBatch
	}
	return distillLiveBytes(mf, h, inter, kv, cfg.Int("vocab_size"), distill.TrainSet(d.train), d.recompute, batch, train.T, train.N)
}
