package verify

import (
	"context"
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// Compare runs orig and comp over data in batches of opt.Batch and returns
// the quality fields of a Report (KL, agreement, NLL, accuracy, hidden-state
// errors); next-token NLL is measured when orig is a causal LM. It checks
// neither integrity nor thresholds, and reads only opt.Batch and
// opt.Progress.
func Compare(ctx context.Context, orig, comp *model.Model, data *dataset.Dataset, o Options) (*Report, error) {
	o.Dataset = data
	opt, err := o.resolve()
	if err != nil {
		return nil, err
	}
	rep := &Report{Data: data.Source}
	if err := compare(ctx, rep, orig, comp, data, opt); err != nil {
		return nil, err
	}
	return rep, nil
}

// compare runs both models over data and fills the quality fields of rep.
func compare(ctx context.Context, rep *Report, orig, comp *model.Model, data *dataset.Dataset, opt params) error {
	acc := &accumulator{causal: orig.IsCausalLM(), labels: data.Labels, score: data.Score}
	for i := 0; i < data.N; i += opt.Batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		j := min(data.N, i+opt.Batch)
		in := data.Batch(i, j)
		o, err := orig.Net.Forward(in, transformer.Options{Hidden: true})
		if err != nil {
			return fmt.Errorf("original model: %w", err)
		}
		c, err := comp.Net.Forward(in, transformer.Options{Hidden: true})
		if err != nil {
			return fmt.Errorf("compressed model: %w", err)
		}
		acc.add(in, i, o, c)
		if opt.Progress != nil {
			opt.Progress(stage.Progress{Stage: stage.Verify, Done: j, Total: data.N})
		}
	}
	acc.fill(rep, data.N)
	return nil
}

// accumulator gathers the agreement measures of compare over batches.
type accumulator struct {
	causal bool
	labels []int
	// score, when not nil, holds the scored targets of each sequence
	// (dataset.Dataset.Score); KL, agreement and NLL are measured at the
	// positions that predict them only.
	score []dataset.Span

	kls                []float64
	agree, nllO, nllC  float64
	nllCount           int
	correctO, correctC int
	outErr, poolErr    relAccum
	layerErr           []relAccum
	positions          int
}

// add accumulates one batch: in, whose first item is item first of the
// data, and both models' outputs o (original) and c (compressed).
func (a *accumulator) add(in *transformer.Input, first int, o, c *transformer.Output) {
	if a.layerErr == nil {
		a.layerErr = make([]relAccum, len(o.HiddenStates))
	}
	for l := range o.HiddenStates {
		a.layerErr[l].add(c.HiddenStates[l], o.HiddenStates[l])
	}
	a.positions += in.Batch * max(in.Seq, 1)
	if o.Logits == nil {
		a.outErr.add(c.LastHidden, o.LastHidden)
		if o.Pooler != nil {
			a.poolErr.add(c.Pooler, o.Pooler)
		}
		return
	}
	a.outErr.add(c.Logits, o.Logits)
	v := o.LogitsShape[len(o.LogitsShape)-1]
	rows := len(o.Logits) / v
	lp, lq := make([]float64, v), make([]float64, v)
	for r := 0; r < rows; r++ {
		if a.causal && a.score != nil {
			s, next := a.score[first+r/in.Seq], r%in.Seq+1
			if next < s.From || next >= s.To {
				continue
			}
		}
		ro, rc := o.Logits[r*v:(r+1)*v], c.Logits[r*v:(r+1)*v]
		logSoftmax(lp, ro)
		logSoftmax(lq, rc)
		a.kls = append(a.kls, KL(lp, lq))
		if argmax(ro) == argmax(rc) {
			a.agree++
		}
		switch {
		case a.causal:
			b, t := r/in.Seq, r%in.Seq
			if t+1 < in.Seq {
				next := in.IDs[b*in.Seq+t+1]
				a.nllO -= lp[next]
				a.nllC -= lq[next]
				a.nllCount++
			}
		case a.labels != nil && len(o.LogitsShape) == 2:
			label := a.labels[first+r]
			if argmax(ro) == label {
				a.correctO++
			}
			if argmax(rc) == label {
				a.correctC++
			}
		}
	}
}

// fill writes the measures accumulated over n items into rep.
func (a *accumulator) fill(rep *Report, n int) {
	rep.Positions += a.positions
	rep.OutputRelError = ptr(a.outErr.value())
	if a.poolErr.den > 0 {
		rep.PoolerRelError = ptr(a.poolErr.value())
	}
	for _, l := range a.layerErr {
		rep.LayerRelError = append(rep.LayerRelError, l.value())
	}
	if len(a.kls) > 0 {
		d := summarise(a.kls)
		rep.KLMean, rep.KLP95, rep.KLP99, rep.KLMax = ptr(d.mean), ptr(d.p95), ptr(d.p99), ptr(d.max)
		rep.Top1Agreement = ptr(a.agree / float64(len(a.kls)))
		rep.Positions = len(a.kls)
	}
	if a.nllCount > 0 {
		no, nc := a.nllO/float64(a.nllCount), a.nllC/float64(a.nllCount)
		rep.NLLOriginal, rep.NLLCompressed = ptr(no), ptr(nc)
		rep.PPLOriginal, rep.PPLCompressed = ptr(math.Exp(no)), ptr(math.Exp(nc))
		rep.PPLRatio = ptr(math.Exp(nc - no))
	}
	if a.labels != nil && !a.causal {
		rep.AccuracyOriginal = ptr(float64(a.correctO) / float64(n))
		rep.AccuracyCompressed = ptr(float64(a.correctC) / float64(n))
	}
}
