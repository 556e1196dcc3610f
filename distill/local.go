package distill

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// localSeed separates the batches of the local stage from the global
// stage's.
const localSeed = 0x6c6f63616c

// localStage trains, one compound at a time, the compound's trainable
// stored tensors (bases, factors, deltas) so that every block's output
// matches the teacher's on the same input, fed both the teacher's input to
// the block and the student's own (the joint loss of Lillama): per block,
// the mean of the two relative squared errors ‖f_s(x) − f_t(x_t)‖²/‖f_t(x_t)‖²,
// averaged over the compound's blocks. The student's inputs come from the
// student as trained so far, so later compounds learn to correct earlier
// ones' errors. Each compound gets LocalSteps AdamW steps with fresh
// moments, warm-up and cosine decay; the moments are cleared afterwards so
// that the global stage starts fresh.
type localStage struct {
	r        *runState
	teacher  *transformer.Model
	tt, ts   *transformer.Trainer
	lossGrad []float32
	done     int
}

// runLocal runs the local stage over every compound and appends its steps
// to r.res.LocalLog.
func (r *runState) runLocal(ctx context.Context, teacher *model.Model) error {
	opt := r.opt
	if opt.LocalSteps == 0 || r.res.Resumed {
		return nil
	}
	ls := &localStage{r: r, teacher: teacher.Net, tt: teacher.Net.NewTrainer(), ts: r.res.Student.Net.NewTrainer()}
	t0 := time.Now()
	total := opt.LocalSteps * len(r.vm.Manifest.Compounds)
	for c, layers := range r.vm.Manifest.Compounds {
		ps := r.st.layerParams(layers)
		optim := &adamW{beta1: opt.Beta1, beta2: opt.Beta2, eps: opt.Eps, weightDecay: opt.WeightDecay}
		for s := range opt.LocalSteps {
			if err := ctx.Err(); err != nil {
				return err
			}
			idx := batchIndices(opt.Seed^localSeed, c*opt.LocalSteps+s, opt.Batch, r.train.N)
			loss, err := ls.lossAndGrad(r.train.Gather(idx), layers, ps)
			if err != nil {
				return fmt.Errorf("local stage, compound %d step %d: %w", c, s, err)
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return fmt.Errorf("local stage, compound %d step %d: loss is %v; lower the learning rate", c, s, loss)
			}
			gn := clipGradNorm(ps, opt.ClipNorm)
			lr := opt.LocalLR * schedule(s, opt.LocalSteps, min(opt.Warmup, opt.LocalSteps/4), opt.MinLRRatio, opt.Decay)
			optim.update(ps, lr)
			for _, l := range layers {
				if err := r.res.Student.MaterializeLayer(l); err != nil {
					return err
				}
			}
			ls.done++
			st := Stats{Step: ls.done, Steps: total, Compound: c, Loss: loss, LR: lr, GradNorm: gn, Elapsed: time.Since(t0)}
			r.res.LocalLog = append(r.res.LocalLog, st)
			if opt.Progress != nil {
				opt.Progress(stage.Progress{Stage: StageLocal, Done: ls.done, Total: total, Loss: loss})
			}
		}
		for _, p := range ps {
			clear(p.m)
			clear(p.v)
		}
	}
	return nil
}

// StageLocal names the local stage in progress reports.
const StageLocal = "distill-local"

// blockInputs holds, per block of a compound, the teacher's input and
// output and the student's own input, for one batch of B items of T
// positions.
type blockInputs struct {
	B, T       int
	xt, yt, xs [][]float32
}

// lossAndGrad returns the local loss of the blocks layers on in and leaves
// its gradient in the trainable tensors ps (cleared first).
func (ls *localStage) lossAndGrad(in *transformer.Input, layers []int, ps []*param) (float64, error) {
	bi, err := ls.inputs(in, layers)
	if err != nil {
		return 0, err
	}
	return ls.terms(bi, layers, ps)
}

// inputs runs teacher and student over in and collects, per block of the
// compound, the inputs each gives it and the teacher's output (the hidden
// states of one full pass each; the last block's output, which decoder LMs
// report after the final norm, by running that block alone).
func (ls *localStage) inputs(in *transformer.Input, layers []int) (*blockInputs, error) {
	ht, err := ls.hidden(ls.teacher, in)
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	hs, err := ls.hidden(ls.r.res.Student.Net, in)
	if err != nil {
		return nil, fmt.Errorf("student: %w", err)
	}
	bi := &blockInputs{B: in.Batch, T: len(ht[0]) / (in.Batch * ls.teacher.Hidden())}
	last := ls.teacher.NumLayers() - 1
	for _, l := range layers {
		bi.xt, bi.xs = append(bi.xt, ht[l]), append(bi.xs, hs[l])
		if l < last {
			bi.yt = append(bi.yt, ht[l+1])
			continue
		}
		y, err := ls.tt.ForwardLayer(l, bi.B, bi.T, ht[l])
		if err != nil {
			return nil, err
		}
		bi.yt = append(bi.yt, append([]float32(nil), y...))
	}
	return bi, nil
}

// terms returns the local loss on the block inputs bi, the student's inputs
// taken as constants (each block learns to map both inputs onto the
// teacher's output; it is not trained to change the next block's input),
// and leaves its gradient in ps (cleared first).
func (ls *localStage) terms(bi *blockInputs, layers []int, ps []*param) (float64, error) {
	for _, p := range ps {
		clear(p.grad)
	}
	var loss float64
	w := 1 / float64(2*len(layers))
	for j, l := range layers {
		for _, x := range [][]float32{bi.xt[j], bi.xs[j]} {
			lj, err := ls.blockLoss(l, bi.B, bi.T, x, bi.yt[j], w)
			if err != nil {
				return 0, err
			}
			loss += lj
		}
	}
	return loss, nil
}

// hidden returns the hidden states of a full pass of m on in.
func (ls *localStage) hidden(m *transformer.Model, in *transformer.Input) ([][]float32, error) {
	out, err := m.Forward(in, transformer.Options{Hidden: true})
	if err != nil {
		return nil, err
	}
	return out.HiddenStates, nil
}

// blockLoss runs the student's block l on x, adds w·‖y − want‖²/‖want‖²'s
// gradient to the stored tensors of the block and returns that loss term.
func (ls *localStage) blockLoss(l, B, T int, x, want []float32, w float64) (float64, error) {
	y, err := ls.ts.ForwardLayer(l, B, T, x)
	if err != nil {
		return 0, err
	}
	loss, dy := relativeSquaredError(y, want, w, ls.lossGrad)
	ls.lossGrad = dy
	grads, _, err := ls.ts.BackwardLayer(dy)
	if err != nil {
		return 0, err
	}
	ls.r.st.chainLayer(grads, l)
	return loss, nil
}

// relativeSquaredError returns w·‖y − want‖²/‖want‖² and its gradient with
// respect to y, written into buf when it is large enough.
func relativeSquaredError(y, want []float32, w float64, buf []float32) (float64, []float32) {
	var num, den float64
	for i := range want {
		d := float64(y[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		den = 1
	}
	if cap(buf) < len(y) {
		buf = make([]float32, len(y))
	}
	g := buf[:len(y)]
	c := float32(2 * w / den)
	for i := range g {
		g[i] = c * (y[i] - want[i])
	}
	return w * num / den, g
}
