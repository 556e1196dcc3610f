package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// distillJob is a distillation run as the command line performs it: train
// data, the distill stage with evaluation, and the result written with its
// loss log and plot.
type distillJob struct {
	// Teacher is the original model; Student the VLoRA model to train,
	// written to Output.
	Teacher *model.Model
	Student *vlora.Model
	Output  string
	// Train is the training data; Eval the evaluation data (nil: none).
	Train, Eval *dataset.Dataset
	Options     distill.Options
	// Clock, when set, records the job's stages: train (with evaluate
	// inside it) and write.
	Clock *stageClock
}

// distillSummary reports a finished job.
type distillSummary struct {
	Output          string  `json:"output"`
	Steps           int     `json:"steps"`
	Tokens          int64   `json:"tokens"`
	FinalLoss       float64 `json:"final_loss"`
	EvalKL          float64 `json:"eval_kl"`
	EvalAgreement   float64 `json:"eval_top1_agreement"`
	EvalNLL         float64 `json:"eval_nll,omitempty"`
	EvalData        string  `json:"eval_data"`
	TrainData       string  `json:"train_data"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	TrainSeconds    float64 `json:"train_seconds"`
	LocalSteps      int     `json:"local_steps,omitempty"`
	LocalSeconds    float64 `json:"local_seconds,omitempty"`
	LossCSV         string  `json:"loss_csv"`
	LossPlot        string  `json:"loss_plot"`
	ParamsStored    int64   `json:"params_stored"`
	// BitsPerWeight is the written file's bits per original weight.
	BitsPerWeight float64 `json:"bits_per_weight"`
	Resumed       bool    `json:"resumed,omitempty"`
	// Stages are the wall time and peak memory of each stage of the
	// command, in the order they finished.
	Stages []stageStat `json:"stages,omitempty"`
	// Engine is the PyTorch engine's done event (--engine torch).
	Engine json.RawMessage `json:"engine,omitempty"`
}

// run performs j. Intermediate checkpoints go beside Output; on success they
// are removed and the final file replaces Output atomically.
func (j *distillJob) run(ctx context.Context) (*distillSummary, error) {
	train, eval := j.Train, j.Eval
	if j.Options.CheckpointPath == "" {
		j.Options.CheckpointPath = filepath.Join(filepath.Dir(j.Output), checkpointName)
	}
	if eval != nil {
		evaluate := evaluateOn(j.Teacher, eval)
		j.Options.Evaluate = func(ctx context.Context, student *model.Model) (e *distill.Evaluation, err error) {
			err = j.Clock.run("evaluate", func() error {
				e, err = evaluate(ctx, student)
				return err
			})
			return e, err
		}
	}
	var res *distill.Result
	err := j.Clock.run("train", func() error {
		var err error
		res, err = distill.Run(ctx, j.Teacher, j.Student, train, j.Options)
		return err
	})
	if err != nil {
		return nil, err
	}
	sum := &distillSummary{Output: j.Output, Steps: res.Steps, Tokens: res.Tokens, FinalLoss: res.FinalLoss,
		TrainData: train.Source, TokensPerSecond: res.TokensPerSecond, TrainSeconds: res.TrainSeconds, Resumed: res.Resumed}
	if n := len(res.LocalLog); n > 0 {
		sum.LocalSteps, sum.LocalSeconds = n, res.LocalLog[n-1].Elapsed.Seconds()
	}
	if e := res.Eval; e != nil {
		sum.EvalKL, sum.EvalAgreement, sum.EvalNLL, sum.EvalData = e.KL, e.Agreement, e.NLL, e.Data
	}
	// The training state is garbage now; returning it before the output is
	// encoded keeps the write stage below the training stage's peak.
	debug.FreeOSMemory()
	if err := j.Clock.run("write", func() error { return j.write(sum, res) }); err != nil {
		return nil, err
	}
	os.Remove(j.Options.CheckpointPath)
	os.Remove(distill.OptimPath(j.Options.CheckpointPath))
	return sum, nil
}

// evaluateOn returns a distill.Options.Evaluate that compares the student
// with teacher on eval.
func evaluateOn(teacher *model.Model, eval *dataset.Dataset) func(context.Context, *model.Model) (*distill.Evaluation, error) {
	return func(ctx context.Context, student *model.Model) (*distill.Evaluation, error) {
		rep, err := verify.Compare(ctx, teacher, student, eval, verify.Options{})
		if err != nil {
			return nil, err
		}
		if rep.KLMean == nil {
			return nil, errors.New("the model gives no logits to compare")
		}
		e := &distill.Evaluation{KL: *rep.KLMean, Agreement: *rep.Top1Agreement, Data: eval.Source}
		if rep.NLLCompressed != nil {
			e.NLL = *rep.NLLCompressed
		}
		return e, nil
	}
}

// write saves the distilled model, its loss log (CSV) and loss plot (PNG).
func (j *distillJob) write(sum *distillSummary, res *distill.Result) error {
	if err := j.Student.Save(j.Output); err != nil {
		return err
	}
	sum.ParamsStored = j.Student.Manifest.Counts.ParamsStored
	sum.BitsPerWeight, _ = j.Student.Manifest.BitsPerOriginalWeight()
	base := strings.TrimSuffix(j.Output, ".safetensors")
	sum.LossCSV, sum.LossPlot = base+".loss.csv", base+".loss.png"
	if err := writeLossCSV(sum.LossCSV, res); err != nil {
		return err
	}
	mf := j.Student.Manifest
	title := fmt.Sprintf("distillation: K=%d, %s base, %d steps × %d", mf.CompoundSize, mf.BaseMode, res.Steps, cmp.Or(j.Options.Batch, distill.DefaultBatch))
	return writeLossPlot(sum.LossPlot, title, res)
}
