// Package distill fine-tunes a VLoRA model until its outputs match the
// original model's: KL(teacher ‖ student) on logits, optionally with a
// temperature and a layer-by-layer hidden-state term, optimized by AdamW
// with a warm-up + cosine (or linear) schedule and gradient clipping. Gradients of the
// dense per-layer weights are chained onto the stored bases, factors and
// deltas (W = base + B·A).
package distill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Options configures Run. The zero value of every field selects the
// documented default.
type Options struct {
	// Steps is the number of optimizer steps (0: none; the student is
	// evaluated and recorded as it is).
	Steps int
	// Tokens, when positive (and Steps zero), sets the number of steps to
	// the fewest that train on at least Tokens tokens (Batch sequences of
	// the training data's length per step; an image counts as one).
	Tokens int64
	// Batch is the number of sequences (or images) per step (default
	// DefaultBatch).
	Batch int
	// LR is the peak learning rate (default DefaultLR, or DefaultQATLR for
	// quantization-aware training without sharing); MinLRRatio the final
	// fraction of it reached by the decay (default
	// DefaultMinLRRatio); Warmup the
	// number of linear warm-up steps (default DefaultWarmup).
	LR         float64
	MinLRRatio float64
	Warmup     int
	// Decay is the shape of the decay from the peak to MinLRRatio of it
	// (default DecayCosine).
	Decay Decay
	// Beta1, Beta2, Eps and WeightDecay configure AdamW (defaults 0.9,
	// 0.999, 1e-8, 0).
	Beta1, Beta2, Eps, WeightDecay float64
	// ClipNorm clips the global gradient norm; 0 disables clipping.
	ClipNorm float64
	// Train selects the trainable tensors (default TrainBases).
	Train TrainSet
	// LRScales sets per-class learning-rate multipliers.
	LRScales LRScales
	// LocalSteps, when positive, runs a local stage first: per compound,
	// that many AdamW steps on the compound's bases, factors and deltas,
	// matching each block's output to the teacher's when fed the teacher's
	// input to the block and when fed the student's own (the mean relative
	// squared error of the two). Result.LocalLog records it. LocalLR is its
	// peak learning rate (default LR).
	LocalSteps int
	LocalLR    float64
	// Precondition applies ScaledGD's factor preconditioning to the
	// gradients of low-rank pairs before AdamW (see student.precondition),
	// with ridge PreconditionDamping (default DefaultPreconditionDamping).
	Precondition        bool
	PreconditionDamping float64
	// Temperature softens both distributions in the KL term (default 1);
	// the loss is multiplied by T² to keep gradient scales comparable.
	Temperature float64
	// HiddenWeight, when positive, adds that weight times the mean over
	// layers of ‖h_student − h_teacher‖² / ‖h_teacher‖².
	HiddenWeight float64
	// HiddenDecay lowers the hidden-state weight over the global stage, from
	// HiddenWeight at the first step to zero at the last along a cosine, so
	// that the dense layer-by-layer signal leads the early steps and the
	// last ones optimize the KL alone. It pays in long runs: on bytellama
	// it lowers the final KL by 7.6% at 10 M tokens and raises it by 1.9%
	// at 1.2 M (docs/quality.md).
	HiddenDecay bool
	// Seed drives batch sampling; equal seeds give equal runs.
	Seed uint64
	// Residency says where the student's dense layer weights live: the
	// zero value, model.Auto, streams large models, building each layer's
	// weights from the bases and factors only while a pass runs it.
	Residency model.Residency
	// Recompute keeps only each layer's input during the student's
	// forward pass and recomputes the layer's activations in the backward
	// pass (transformer.Trainer.Recompute): less memory when activations
	// dominate, one more forward pass per step, the same result.
	Recompute bool
	// TeacherCacheBytes bounds the memory used to keep teacher
	// log-probabilities of the training items (default 1 GiB).
	TeacherCacheBytes int64
	// CheckpointEvery saves the model and optimizer state to
	// CheckpointPath every that many steps (0: never).
	CheckpointEvery int
	CheckpointPath  string
	// Resume continues from the checkpoint at CheckpointPath if present.
	Resume bool
	// Progress, when set, is called after every step with Stage
	// stage.Distill, Done and Total counting steps, Loss and TokensPerSec.
	Progress stage.ProgressFunc
	// Evaluate, when set, is called once after training with the distilled
	// student; its result is returned in Result.Eval and recorded in the
	// manifest. verify.Compare is the usual implementation.
	Evaluate func(ctx context.Context, student *model.Model) (*Evaluation, error)
	// Quant, when active, trains for quantized storage: the forward pass
	// uses the fake-quantized tensors (scales recomputed at every step),
	// gradients reach the float master weights straight through, and at
	// the end the tensors are replaced by their quantized values and the
	// plan is recorded in the manifest, so that saving writes exactly the
	// model that was distilled. Its zero value continues the plan the
	// student's manifest records (a quantized file stays quantized), or
	// trains in float.
	Quant vlora.QuantPlan
}

// Evaluation is the agreement of the distilled student with the teacher on
// held-out data.
type Evaluation struct {
	KL, Agreement float64
	// NLL is the student's next-token NLL (causal LMs; 0 otherwise).
	NLL float64
	// Data describes the evaluation inputs.
	Data string
}

// Defaults taken by the zero values of Options.
const (
	// DefaultBatch and DefaultSteps train on 1.2 M tokens at sequence
	// length 256. At that budget 600 steps of 8 sequences end 2.5% below
	// 300 of 16 and 2% above 1,200 of 4 on bytellama (docs/quality.md).
	DefaultBatch  = 8
	DefaultSteps  = 600
	DefaultLR     = 2e-3
	DefaultWarmup = 20
	// DefaultMinLRRatio is the fraction of the peak learning rate the
	// decay ends at. Ending at 1% instead of 10% lowers the final
	// KL on bytellama by about 1% at 1.2 M tokens (docs/quality.md).
	DefaultMinLRRatio = 0.01
	// DefaultTeacherCacheBytes is Options.TeacherCacheBytes when zero.
	DefaultTeacherCacheBytes = 1 << 30
)

// DefaultQATLR is the learning rate taken by the zero value of Options.LR
// for quantization-aware training of a student without low-rank
// increments (every tensor dense: compound size 1, the first layer of each
// compound as base, or a bit plan that keeps every layer tensor dense)
// under a plan that stores most of its quantized values in 3 bits or
// more. Such a
// student starts close to the teacher, and Adam's steps of about lr per
// weight at DefaultLR are a sizeable fraction of an int4 step: on
// bytellama, dense int4/g32 ends worse than round to nearest at 2e-3 and
// better at 5e-4 (docs/quality.md). Students with low-rank increments, and
// plans with most values in 2 bits, start far from the teacher and keep
// DefaultLR.
const DefaultQATLR = 5e-4

// defaultLR returns the default learning rate for training vm under plan.
func defaultLR(plan vlora.QuantPlan, vm *vlora.Model) float64 {
	return lrFor(plan, vm.Manifest, vm.Tensors)
}

// DefaultLRFor returns the learning rate Run takes when Options.LR is zero,
// for the model mf describes trained under plan (the zero plan: the one mf
// records, if any, else float): DefaultQATLR for quantization-aware
// training of a model without low-rank increments or shared bases whose
// quantized values are mostly stored in 3 bits or more, DefaultLR
// otherwise. With the manifest alone the quantized values are judged by
// the family schemes.
func DefaultLRFor(plan vlora.QuantPlan, mf *vlora.Manifest) float64 {
	if !plan.Active() && mf.Quant != nil {
		plan = *mf.Quant
	}
	return lrFor(plan, mf, nil)
}

// lrFor is defaultLR and DefaultLRFor: tensors (may be nil) are the
// model's, to count the quantized values by their schemes.
func lrFor(plan vlora.QuantPlan, mf *vlora.Manifest, tensors map[string]*vlora.Tensor) float64 {
	if !plan.Active() {
		return DefaultLR
	}
	for _, inc := range mf.Increments {
		if inc.Kind == vlora.KindLowRank || mf.HasBase(inc.Suffix) {
			return DefaultLR
		}
	}
	// Below 3 bits training starts far from the teacher: the higher rate,
	// when most quantized values are stored so.
	var low, all int
	for name, t := range tensors {
		if s, ok := plan.SchemeOf(name, t.Shape); ok {
			all += len(t.Data)
			if s.Bits < 3 {
				low += len(t.Data)
			}
		}
	}
	if all == 0 {
		// No tensors to count (a manifest alone): by the family schemes.
		for _, s := range []quant.Scheme{plan.Bases, plan.Factors, plan.Passthrough} {
			if s.Bits != 0 && s.Bits < 3 {
				return DefaultLR
			}
		}
	}
	if 2*low > all {
		return DefaultLR
	}
	return DefaultQATLR
}

// params holds Options with every default resolved and validated.
type params Options

// resolve validates o and returns it with defaults applied. Errors wrap
// formats.ErrInvalid.
func (o Options) resolve() (params, error) {
	p := params(o)
	if p.Tokens < 0 || (p.Tokens > 0 && p.Steps > 0) {
		return p, fmt.Errorf("%w: set at most one of steps and tokens (tokens %d)", formats.ErrInvalid, p.Tokens)
	}
	if p.Steps < 0 || p.LocalSteps < 0 {
		return p, fmt.Errorf("%w: steps %d and local steps %d must not be negative", formats.ErrInvalid, p.Steps, p.LocalSteps)
	}
	if p.LRScales.Bases < 0 || p.LRScales.Passthrough < 0 || p.LocalLR < 0 {
		return p, fmt.Errorf("%w: learning-rate scales and the local learning rate must not be negative", formats.ErrInvalid)
	}
	if p.Batch < 0 || p.LR < 0 {
		return p, fmt.Errorf("%w: batch %d and learning rate %g must be positive", formats.ErrInvalid, p.Batch, p.LR)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"learning rate", p.LR}, {"minimum LR ratio", p.MinLRRatio}, {"beta1", p.Beta1}, {"beta2", p.Beta2},
		{"epsilon", p.Eps}, {"weight decay", p.WeightDecay}, {"clip norm", p.ClipNorm},
		{"temperature", p.Temperature}, {"hidden weight", p.HiddenWeight}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return p, fmt.Errorf("%w: %s %g must be finite and not negative", formats.ErrInvalid, f.name, f.v)
		}
	}
	if !p.Decay.valid() {
		return p, fmt.Errorf("%w: unknown learning-rate decay %v", formats.ErrInvalid, p.Decay)
	}
	if p.Warmup < 0 || p.CheckpointEvery < 0 {
		return p, fmt.Errorf("%w: warm-up %d and checkpoint interval %d must not be negative", formats.ErrInvalid, p.Warmup, p.CheckpointEvery)
	}
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	p.Batch = cmp.Or(p.Batch, DefaultBatch)
	p.Warmup = cmp.Or(p.Warmup, DefaultWarmup)
	def(&p.LR, DefaultLR)
	def(&p.MinLRRatio, DefaultMinLRRatio)
	def(&p.Beta1, 0.9)
	def(&p.Beta2, 0.999)
	def(&p.Eps, 1e-8)
	def(&p.Temperature, 1)
	def(&p.LocalLR, p.LR)
	def(&p.PreconditionDamping, DefaultPreconditionDamping)
	p.Train = cmp.Or(p.Train, TrainBases)
	p.TeacherCacheBytes = cmp.Or(p.TeacherCacheBytes, DefaultTeacherCacheBytes)
	if _, err := ParseTrainSet(string(p.Train)); err != nil {
		return p, fmt.Errorf("%w: %v", formats.ErrInvalid, err)
	}
	return p, nil
}

// Stats describes progress after a step; Result.Log holds one per step.
type Stats struct {
	Step, Steps int
	// Compound is the compound a local-stage step trained.
	Compound     int
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
	Log []Stats
	// LocalLog holds one entry per step of the local stage.
	LocalLog        []Stats
	TokensPerSecond float64
	TrainSeconds    float64
	// Resumed is set when the run continued from a checkpoint.
	Resumed bool
	// Eval is Options.Evaluate's result, nil without it.
	Eval *Evaluation
	// Student runs the distilled VLoRA model.
	Student *model.Model
}

// ErrUnsupported reports a model the distillation stage cannot train.
var ErrUnsupported = errors.New("distillation not supported for this model")

// Run distills vm (the student) towards teacher, the original model, on
// train. vm's tensors are updated in place and its manifest records the run
// (vlora.DistillInfo, adding to an earlier record's steps and tokens); the
// caller saves it. Models without logits to match give ErrUnsupported.
func Run(ctx context.Context, teacher *model.Model, vm *vlora.Model, train *dataset.Dataset, opt Options) (*Result, error) {
	if !opt.Quant.Active() && vm.Manifest.Quant != nil {
		opt.Quant = *vm.Manifest.Quant
	}
	if opt.LR == 0 {
		opt.LR = defaultLR(opt.Quant, vm)
	}
	prm, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	if err := checkInputs(teacher, train, prm.Batch); err != nil {
		return nil, err
	}
	if prm.Tokens > 0 {
		prm.Steps = StepsForTokens(prm.Tokens, prm.Batch, train.T)
	}
	r, err := newRun(teacher, vm, train, prm)
	if err != nil {
		return nil, err
	}
	if err := r.runLocal(ctx, teacher); err != nil {
		return r.res, err
	}
	r.t0 = time.Now() // the global stage's throughput leaves the local stage out
	for s := r.start; s < prm.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return r.res, err
		}
		if err := r.step(s); err != nil {
			return r.res, err
		}
	}
	if r.st.fq != nil {
		r.st.fq.commit()
		vm.Manifest.Quant = &prm.Quant
		if err := r.st.materialize(); err != nil {
			return nil, err
		}
	}
	r.summarise()
	if prm.Evaluate != nil {
		if r.res.Eval, err = prm.Evaluate(ctx, r.res.Student); err != nil {
			return nil, fmt.Errorf("evaluating the student: %w", err)
		}
	}
	record(vm, r.res, train, prm)
	return r.res, nil
}

// checkInputs checks that teacher has logits to match, that train fits its
// vocabulary and that a batch's activations fit the memory budget.
func checkInputs(teacher *model.Model, train *dataset.Dataset, batch int) error {
	if !teacher.IsCausalLM() && teacher.Config.ModelType != "vit" {
		return fmt.Errorf("%w: %s has no logits to match", ErrUnsupported, teacher.Config.Architecture())
	}
	if train == nil || train.N == 0 {
		return fmt.Errorf("%w: distill: no training data", formats.ErrInvalid)
	}
	if err := dataset.CheckBatchBudget(fmt.Sprintf("distill: batches of %d × %d", batch, train.T), dataset.BatchBytes(teacher.Config, batch, train.T), teacher.StoredParams); err != nil {
		return err
	}
	if train.IsImages() {
		return nil
	}
	return train.CheckRange(teacher.Config.VocabSize, teacher.Config.Int("type_vocab_size"))
}

// runState is the state of one Run.
type runState struct {
	opt     params
	train   *dataset.Dataset
	vm      *vlora.Model
	st      *student
	trainer *transformer.Trainer
	optim   *adamW
	tc      *teacher
	vocab   int
	grad    []float32
	res     *Result
	start   int
	// tokens and elapsed continue a resumed run's counters; t0 is the
	// start of this process's share.
	tokens      int64
	prevElapsed time.Duration
	t0          time.Time
}

// newRun prepares the student, the optimizer (restored from a checkpoint
// when resuming) and the teacher cache.
func newRun(teacherModel *model.Model, vm *vlora.Model, train *dataset.Dataset, opt params) (*runState, error) {
	loaded, err := model.FromVLoRAAs(vm, opt.Residency)
	if err != nil {
		return nil, err
	}
	st, err := newStudent(loaded, opt.Train, opt.LRScales)
	if err != nil {
		return nil, err
	}
	if st.fq, err = newFakeQuant(st, opt.Quant); err != nil {
		return nil, err
	}
	r := &runState{opt: opt, train: train, vm: vm, st: st, res: &Result{Student: loaded},
		optim: &adamW{beta1: opt.Beta1, beta2: opt.Beta2, eps: opt.Eps, weightDecay: opt.WeightDecay}}
	if opt.Resume && opt.CheckpointPath != "" {
		step, log, ok, err := loadCheckpoint(opt.CheckpointPath, vm, st)
		if err != nil {
			return nil, err
		}
		if ok {
			r.start, r.res.Log, r.res.Resumed = step, log, true
			r.optim.step = step
		}
	}
	if err := st.materialize(); err != nil {
		return nil, err
	}
	r.trainer = loaded.Net.NewBlockTrainer(st.chainBlock)
	r.trainer.Recompute = opt.Recompute
	// Probe the output shape with one item.
	probe, err := teacherModel.Net.Forward(train.Gather([]int{0}), transformer.Options{})
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if probe.Logits == nil {
		return nil, fmt.Errorf("%w: the model has no logits to match (encoders without a head are not supported)", ErrUnsupported)
	}
	r.vocab = probe.LogitsShape[len(probe.LogitsShape)-1]
	rowsPer := len(probe.Logits) / r.vocab
	r.tc = newTeacher(teacherModel.Net, train, r.vocab, rowsPer, opt.TeacherCacheBytes)
	r.grad = make([]float32, opt.Batch*rowsPer*r.vocab)
	if n := len(r.res.Log); n > 0 {
		r.tokens, r.prevElapsed = r.res.Log[n-1].Tokens, r.res.Log[n-1].Elapsed
	}
	r.t0 = time.Now()
	return r, nil
}

// step performs optimizer step s: loss and gradients on one batch, update,
// re-materialization, log entry, progress report and checkpoint.
func (r *runState) step(s int) error {
	opt := r.opt
	idx := batchIndices(opt.Seed, s, opt.Batch, r.train.N)
	loss, err := r.lossAndGrad(s, idx)
	if err != nil {
		return err
	}
	if opt.Precondition {
		if err := r.st.precondition(opt.PreconditionDamping); err != nil {
			return fmt.Errorf("step %d: %w", s, err)
		}
	}
	gn := clipGradNorm(r.st.params, opt.ClipNorm)
	lr := opt.LR * schedule(s, opt.Steps, opt.Warmup, opt.MinLRRatio, opt.Decay)
	r.optim.update(r.st.params, lr)
	if err := r.st.materialize(); err != nil {
		return err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("step %d: loss is %v; lower the learning rate", s, loss)
	}
	r.tokens += int64(len(idx)) * int64(max(r.train.T, 1))
	el := r.prevElapsed + time.Since(r.t0)
	stat := Stats{Step: s + 1, Steps: opt.Steps, Loss: loss, LR: lr, GradNorm: gn, Tokens: r.tokens, Elapsed: el}
	if secs := el.Seconds(); secs > 0 {
		stat.TokensPerSec = float64(r.tokens) / secs
	}
	r.res.Log = append(r.res.Log, stat)
	if opt.Progress != nil {
		opt.Progress(stage.Progress{Stage: stage.Distill, Done: stat.Step, Total: opt.Steps, Loss: loss, TokensPerSec: stat.TokensPerSec})
	}
	if opt.CheckpointEvery > 0 && opt.CheckpointPath != "" && (s+1)%opt.CheckpointEvery == 0 && s+1 < opt.Steps {
		if err := saveCheckpoint(opt.CheckpointPath, r.vm, r.st, s+1, r.res.Log); err != nil {
			return fmt.Errorf("checkpoint at step %d: %w", s+1, err)
		}
	}
	return nil
}

// lossAndGrad runs teacher and student on the items idx, returns the loss
// and leaves the gradients of the trainable tensors in the student.
func (r *runState) lossAndGrad(s int, idx []int) (float64, error) {
	opt := r.opt
	wantHidden := opt.HiddenWeight > 0
	tlp, thid, err := r.tc.logProbs(idx, wantHidden)
	if err != nil {
		return 0, fmt.Errorf("step %d: teacher: %w", s, err)
	}
	out, err := r.trainer.Forward(r.train.Gather(idx), transformer.Options{Hidden: wantHidden})
	if err != nil {
		return 0, fmt.Errorf("step %d: student: %w", s, err)
	}
	tau := opt.Temperature
	loss, err := transformer.KLDiv(tlp, out.Logits, r.vocab, tau, r.grad)
	if err != nil {
		return 0, err
	}
	if tau != 1 {
		s2 := float32(tau * tau)
		loss *= tau * tau
		for i := range r.grad {
			r.grad[i] *= s2
		}
	}
	og := &transformer.OutputGrad{Logits: r.grad}
	if wantHidden {
		hl, hg := hiddenLoss(out.HiddenStates, thid, r.hiddenWeight(s))
		loss += hl
		og.Hidden = hg
	}
	r.st.zeroGrad()
	g, err := r.trainer.Backward(og)
	if err != nil {
		return 0, fmt.Errorf("step %d: backward: %w", s, err)
	}
	r.st.chainRest(g)
	return loss, nil
}

// hiddenWeight returns the weight of the hidden-state term at global step s.
func (r *runState) hiddenWeight(s int) float64 {
	if !r.opt.HiddenDecay {
		return r.opt.HiddenWeight
	}
	return r.opt.HiddenWeight * schedule(s, r.opt.Steps, 0, 0, DecayCosine)
}

// summarise fills the totals of the result from its log.
func (r *runState) summarise() {
	res := r.res
	res.Steps = r.opt.Steps
	res.Tokens = r.tokens
	if n := len(res.Log); n > 0 {
		k := min(10, n)
		for _, l := range res.Log[n-k:] {
			res.FinalLoss += l.Loss / float64(k)
		}
		last := res.Log[n-1]
		res.TokensPerSecond = last.TokensPerSec
		res.TrainSeconds = last.Elapsed.Seconds()
	}
}

// record writes the run into vm's manifest, adding to an earlier record's
// steps and tokens.
func record(vm *vlora.Model, res *Result, train *dataset.Dataset, opt params) {
	info := &vlora.DistillInfo{
		Steps: res.Steps, Tokens: res.Tokens, Seed: opt.Seed, LR: opt.LR, Batch: opt.Batch, SeqLen: train.T,
		Train: string(opt.Train), FinalLoss: res.FinalLoss,
		Temperature: opt.Temperature, HiddenWeight: opt.HiddenWeight, HiddenDecay: opt.HiddenDecay, LocalSteps: opt.LocalSteps,
		Data: train.Source, DataSHA256: train.SHA256,
	}
	if res.Eval != nil {
		info.EvalKL, info.EvalData = res.Eval.KL, res.Eval.Data
	}
	if prev := vm.Manifest.Distill; prev != nil {
		info.Steps += prev.Steps
		info.Tokens += prev.Tokens
	}
	vm.Manifest.Distill = info
}

// StepsForTokens returns the fewest steps of batch sequences of length t
// (an image, t = 0, counts as one token) that train on at least tokens
// tokens: Options.Tokens resolved as Run resolves it.
func StepsForTokens(tokens int64, batch, t int) int {
	per := int64(max(batch, 1)) * int64(max(t, 1))
	return int((tokens + per - 1) / per)
}

// BatchIndices returns the items Run trains on at step s (0-based) with
// Options.Seed seed and Options.Batch batch, of a training set of n items:
// batch indices in [0, n) drawn with replacement from a PCG stream seeded by
// (seed, s+1). A step's batch depends only on these four numbers, so a
// resumed run sees the same batches, and another engine given them
// (vlora-convert distill --engine torch writes them to its --batch-order
// file) trains on exactly the batches Run would.
func BatchIndices(seed uint64, s, batch, n int) []int { return batchIndices(seed, s, batch, n) }

// batchIndices is BatchIndices.
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
		ll, g := relativeSquaredError(student[l], teacher[l], w/float64(layers), nil)
		loss += ll
		grads[l] = g
	}
	return loss, grads
}
