package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
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
	// Data is the training data file; empty means sequences sampled from
	// the teacher (data-free mode), PoolSize of them.
	Data     string
	PoolSize int
	// SeqLen truncates training sequences (or sets the length of sampled
	// ones; default dataset.DefaultSeqLen when sampling).
	SeqLen int
	// EvalData is the evaluation file; EvalSamples items of it are used
	// (default 64). Without it, EvalSamples sequences (default 16) are
	// sampled from the teacher with a seed different from training's.
	EvalData    string
	EvalSamples int
	// Tokenizer encodes text data (default: the teacher's directory);
	// TextField names the text field of .jsonl files; Stride > 0 starts a
	// text window every Stride tokens.
	Tokenizer, TextField string
	Stride               int
	Options              distill.Options
}

// loadOptions returns the options that read the job's data files: samples
// items (0: all) of sequences truncated or cut to SeqLen.
func (j *distillJob) loadOptions(samples int) dataset.LoadOptions {
	return dataset.LoadOptions{Samples: samples, SeqLen: j.SeqLen, MaxSeqLen: j.Teacher.Config.MaxPositions,
		TokenizerPath: cmp.Or(j.Tokenizer, j.Teacher.Path), TextField: j.TextField, Stride: j.Stride,
		Preprocessor: j.Teacher.Path}
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
	Resumed         bool    `json:"resumed,omitempty"`
}

// evalSeedOffset separates the seed of sampled evaluation data from the
// training seed.
const evalSeedOffset = 0x9e3779b9

// run performs j. Intermediate checkpoints go beside Output; on success they
// are removed and the final file replaces Output atomically.
func (j *distillJob) run(ctx context.Context) (*distillSummary, error) {
	train, err := j.trainData(ctx)
	if err != nil {
		return nil, err
	}
	if j.Options.CheckpointPath == "" {
		j.Options.CheckpointPath = filepath.Join(filepath.Dir(j.Output), "distill.ckpt.safetensors")
	}
	eval, err := j.evalData(ctx, train)
	if err != nil {
		return nil, err
	}
	if eval != nil {
		j.Options.Evaluate = evaluateOn(j.Teacher, eval)
	}
	res, err := distill.Run(ctx, j.Teacher, j.Student, train, j.Options)
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
	if err := j.write(sum, res); err != nil {
		return nil, err
	}
	os.Remove(j.Options.CheckpointPath)
	os.Remove(distill.OptimPath(j.Options.CheckpointPath))
	return sum, nil
}

// trainData loads the training data, or samples it from the teacher.
func (j *distillJob) trainData(ctx context.Context) (*dataset.Dataset, error) {
	if j.Data != "" {
		return dataset.Load(ctx, j.Data, j.loadOptions(0))
	}
	if !j.Teacher.IsCausalLM() {
		if j.Teacher.Config.ModelType != "vit" {
			return nil, fmt.Errorf("%w: %s has no logits to match", distill.ErrUnsupported, j.Teacher.Config.Architecture())
		}
		return nil, fmt.Errorf("%w: data-free distillation needs a language model; pass --data", formats.ErrInvalid)
	}
	n := j.PoolSize
	if n <= 0 {
		n = 4 * cmp.Or(j.Options.Batch, distill.DefaultBatch)
	}
	t := dataset.SeqLen(j.SeqLen, dataset.DefaultSeqLen, j.Teacher.Config.MaxPositions)
	return dataset.Sample(ctx, j.Teacher, n, t, j.Options.Seed)
}

// evalData loads the evaluation data, or samples it from the teacher (causal
// LMs); nil when there is none.
func (j *distillJob) evalData(ctx context.Context, train *dataset.Dataset) (*dataset.Dataset, error) {
	if j.EvalData != "" {
		n := j.EvalSamples
		if n <= 0 {
			n = 64
		}
		return dataset.Load(ctx, j.EvalData, j.loadOptions(n))
	}
	if !j.Teacher.IsCausalLM() {
		return nil, nil
	}
	n := j.EvalSamples
	if n <= 0 {
		n = 16
	}
	t := dataset.SeqLen(j.SeqLen, min(dataset.DefaultSeqLen, max(train.T, 2)), j.Teacher.Config.MaxPositions)
	return dataset.Sample(ctx, j.Teacher, n, t, j.Options.Seed+evalSeedOffset)
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
	base := strings.TrimSuffix(j.Output, ".safetensors")
	sum.LossCSV, sum.LossPlot = base+".loss.csv", base+".loss.png"
	if err := writeLossCSV(sum.LossCSV, res); err != nil {
		return err
	}
	mf := j.Student.Manifest
	title := fmt.Sprintf("distillation: K=%d, %s base, %d steps × %d", mf.CompoundSize, mf.BaseMode, res.Steps, cmp.Or(j.Options.Batch, distill.DefaultBatch))
	return writeLossPlot(sum.LossPlot, title, res)
}
