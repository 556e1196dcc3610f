// Package distill fine-tunes a VLoRA model until its outputs match the
// original model's: KL(teacher ‖ student) on logits, optionally with a
// temperature and a layer-by-layer hidden-state term, optimized by AdamW
// with a warm-up + cosine schedule and gradient clipping. Gradients of the
// dense per-layer weights are chained onto the stored bases, factors and
// deltas (W = base + B·A).
package distill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	// Steps is the number of optimizer steps.
	Steps int
	// Batch is the number of sequences (or images) per step (default 16).
	Batch int
	// LR is the peak learning rate (default 2e-3); MinLRRatio the final
	// fraction of it reached by the cosine decay (default 0.1); Warmup the
	// number of linear warm-up steps (default 20).
	LR         float64
	MinLRRatio float64
	Warmup     int
	// Beta1, Beta2, Eps and WeightDecay configure AdamW (defaults 0.9,
	// 0.999, 1e-8, 0).
	Beta1, Beta2, Eps, WeightDecay float64
	// ClipNorm clips the global gradient norm; 0 disables clipping.
	ClipNorm float64
	// Train selects the trainable tensors (default TrainBases).
	Train TrainSet
	// Temperature softens both distributions in the KL term (default 1);
	// the loss is multiplied by T² to keep gradient scales comparable.
	Temperature float64
	// HiddenWeight, when positive, adds that weight times the mean over
	// layers of ‖h_student − h_teacher‖² / ‖h_teacher‖².
	HiddenWeight float64
	// Seed drives batch sampling; equal seeds give equal runs.
	Seed uint64
	// TeacherCacheBytes bounds the memory used to keep teacher
	// log-probabilities of the training items (default 1 GiB).
	TeacherCacheBytes int64
	// CheckpointEvery saves the model and optimizer state to
	// CheckpointPath every that many steps (0: never).
	CheckpointEvery int
	CheckpointPath  string
	// Resume continues from the checkpoint at CheckpointPath if present.
	Resume bool
	// Progress, when set, is called after every step.
	Progress func(Stats)
	// Quant, when active, trains for quantized storage: the forward pass
	// uses the fake-quantized tensors, gradients reach the float master
	// weights straight through, and at the end the model's tensors are
	// replaced by their quantized values.
	Quant QuantPlan
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 16
	}
	if o.LR <= 0 {
		o.LR = 2e-3
	}
	if o.MinLRRatio <= 0 {
		o.MinLRRatio = 0.1
	}
	if o.Warmup == 0 {
		o.Warmup = 20
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Eps == 0 {
		o.Eps = 1e-8
	}
	if o.Train == "" {
		o.Train = TrainBases
	}
	if o.Temperature <= 0 {
		o.Temperature = 1
	}
	if o.TeacherCacheBytes == 0 {
		o.TeacherCacheBytes = 1 << 30
	}
}

// Stats describes progress after a step.
type Stats struct {
	Step, Steps  int
	Loss         float64
	LR           float64
	GradNorm     float64
	Tokens       int64
	Elapsed      time.Duration
	TokensPerSec float64
}

// Result summarises a run.
type Result struct {
	Steps  int
	Tokens int64
	// FinalLoss is the mean training loss of the last 10 steps.
	FinalLoss float64
	// Log holds one entry per step, including resumed ones.
	Log             []Stats
	TokensPerSecond float64
	TrainSeconds    float64
	// StorageBits is what the stored tensors cost under Options.Quant
	// (quantized ones in their scheme, others in F32); 0 without it.
	StorageBits int64
}

// Run distills vm (the student) towards teacher on train. teacher must be
// the original model. vm's tensors are updated in place.
func Run(ctx context.Context, teacherModel *transformer.Model, vm *vlora.Model, train *verify.Dataset, opt Options) (*Result, error) {
	opt.defaults()
	if opt.Steps < 0 {
		return nil, fmt.Errorf("steps %d must not be negative", opt.Steps)
	}
	if train == nil || train.N == 0 {
		return nil, errors.New("distill: no training data")
	}
	loaded, err := verify.FromVLoRA(vm, "student")
	if err != nil {
		return nil, err
	}
	st, err := newStudent(vm, loaded.Model, opt.Train)
	if err != nil {
		return nil, err
	}
	if st.fq, err = newFakeQuant(st, opt.Quant); err != nil {
		return nil, err
	}
	optim := &adamW{beta1: opt.Beta1, beta2: opt.Beta2, eps: opt.Eps, weightDecay: opt.WeightDecay}
	res := &Result{}
	start := 0
	if opt.Resume && opt.CheckpointPath != "" {
		step, log, ok, err := loadCheckpoint(opt.CheckpointPath, vm, st)
		if err != nil {
			return nil, err
		}
		if ok {
			start, res.Log = step, log
			optim.step = step
		}
	}
	st.materialize()
	trainer := loaded.Model.NewTrainer()

	// Probe the output shape with one item.
	probe, err := teacherModel.Forward(gather(train, []int{0}), transformer.Options{})
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if probe.Logits == nil {
		return nil, errors.New("distill: the model has no logits to match (encoders without a head are not supported)")
	}
	vocab := probe.LogitsShape[len(probe.LogitsShape)-1]
	rowsPer := len(probe.Logits) / vocab
	tc := newTeacher(teacherModel, train, vocab, rowsPer, opt.TeacherCacheBytes)
	perItemTokens := int64(max(train.T, 1))

	grad := make([]float32, opt.Batch*rowsPer*vocab)
	// A resumed run continues the token count and clock of the checkpoint.
	var tokens int64
	var prevElapsed time.Duration
	if len(res.Log) > 0 {
		last := res.Log[len(res.Log)-1]
		tokens, prevElapsed = last.Tokens, last.Elapsed
	}
	t0 := time.Now()
	for s := start; s < opt.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		idx := batchIndices(opt.Seed, s, opt.Batch, train.N)
		wantHidden := opt.HiddenWeight > 0
		tlp, thid, err := tc.logProbs(idx, wantHidden)
		if err != nil {
			return res, fmt.Errorf("step %d: teacher: %w", s, err)
		}
		out, err := trainer.Forward(gather(train, idx), transformer.Options{Hidden: wantHidden})
		if err != nil {
			return res, fmt.Errorf("step %d: student: %w", s, err)
		}
		tau := opt.Temperature
		loss, err := transformer.KLDiv(tlp, out.Logits, vocab, tau, grad)
		if err != nil {
			return res, err
		}
		if tau != 1 {
			s2 := float32(tau * tau)
			loss *= tau * tau
			for i := range grad {
				grad[i] *= s2
			}
		}
		og := &transformer.OutputGrad{Logits: grad}
		if wantHidden {
			hl, hg := hiddenLoss(out.HiddenStates, thid, opt.HiddenWeight)
			loss += hl
			og.Hidden = hg
		}
		g, err := trainer.Backward(og)
		if err != nil {
			return res, fmt.Errorf("step %d: backward: %w", s, err)
		}
		st.chain(g)
		gn := clipGradNorm(st.params, opt.ClipNorm)
		lr := opt.LR * schedule(s, opt.Steps, opt.Warmup, opt.MinLRRatio)
		optim.update(st.params, lr)
		st.materialize()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return res, fmt.Errorf("step %d: loss is %v; lower the learning rate", s, loss)
		}
		tokens += int64(len(idx)) * perItemTokens
		el := prevElapsed + time.Since(t0)
		stat := Stats{Step: s + 1, Steps: opt.Steps, Loss: loss, LR: lr, GradNorm: gn, Tokens: tokens, Elapsed: el}
		if secs := el.Seconds(); secs > 0 {
			stat.TokensPerSec = float64(tokens) / secs
		}
		res.Log = append(res.Log, stat)
		if opt.Progress != nil {
			opt.Progress(stat)
		}
		if opt.CheckpointEvery > 0 && opt.CheckpointPath != "" && (s+1)%opt.CheckpointEvery == 0 && s+1 < opt.Steps {
			if err := saveCheckpoint(opt.CheckpointPath, vm, st, s+1, res.Log); err != nil {
				return res, fmt.Errorf("checkpoint at step %d: %w", s+1, err)
			}
		}
	}
	if st.fq != nil {
		st.fq.commit()
		res.StorageBits = st.fq.storageBits(vm)
	}
	res.Steps = opt.Steps
	res.Tokens = tokens
	if n := len(res.Log); n > 0 {
		k := min(10, n)
		for _, l := range res.Log[n-k:] {
			res.FinalLoss += l.Loss / float64(k)
		}
		last := res.Log[n-1]
		res.TokensPerSecond = last.TokensPerSec
		res.TrainSeconds = last.Elapsed.Seconds()
	}
	return res, nil
}

// batchIndices draws the items of step s with replacement, from a stream
// that depends only on (seed, s), so that a resumed run sees the same
// batches.
func batchIndices(seed uint64, s, batch, n int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(s)+1))
	idx := make([]int, batch)
	for i := range idx {
		idx[i] = rng.IntN(n)
	}
	return idx
}

// hiddenLoss returns w times the mean over layers 1…L of the relative
// squared error of the student's hidden states, and its gradients.
func hiddenLoss(student, teacher [][]float32, w float64) (float64, map[int][]float32) {
	grads := map[int][]float32{}
	var loss float64
	layers := len(student) - 1
	if layers < 1 {
		return 0, grads
	}
	for l := 1; l < len(student); l++ {
		s, t := student[l], teacher[l]
		var num, den float64
		for i := range t {
			d := float64(s[i]) - float64(t[i])
			num += d * d
			den += float64(t[i]) * float64(t[i])
		}
		if den == 0 {
			den = 1
		}
		loss += w * num / den / float64(layers)
		g := make([]float32, len(s))
		c := float32(2 * w / den / float64(layers))
		for i := range g {
			g[i] = c * (s[i] - t[i])
		}
		grads[l] = g
	}
	return loss, grads
}
