package distill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Job is a complete distillation run as the command line performs it:
// load the original and the VLoRA file, train, evaluate, and write the
// result with its loss log and plot.
type Job struct {
	// Original is the Hugging Face model directory (the teacher).
	Original string
	// Input is the VLoRA file (or directory) to start from.
	Input string
	// Output is the VLoRA file to write; it may equal Input.
	Output string
	// Data is the training data file; empty means sequences sampled from
	// the teacher (data-free mode), PoolSize of them.
	Data     string
	PoolSize int
	// SeqLen truncates training sequences (or sets the length of sampled
	// ones; default 128 when sampling).
	SeqLen int
	// EvalData is the evaluation file; EvalSamples items of it are used
	// (default 64). Without it, EvalSamples sequences are sampled from the
	// teacher with a seed different from training's.
	EvalData    string
	EvalSamples int
	Options
}

// Summary reports a finished job.
type Summary struct {
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
	LossCSV         string  `json:"loss_csv"`
	LossPlot        string  `json:"loss_plot"`
	ParamsStored    int64   `json:"params_stored"`
	// BitsPerWeight is the storage under Options.Quant per weight of the
	// original (0 without quantization).
	BitsPerWeight float64 `json:"bits_per_weight,omitempty"`
	Resumed       bool    `json:"resumed,omitempty"`
}

// ErrUnsupported reports a model the distillation stage cannot train.
var ErrUnsupported = errors.New("distillation not supported for this model")

// RunJob performs j. Intermediate checkpoints go beside Output; on success
// they are removed and the final file replaces Output atomically.
func RunJob(ctx context.Context, j Job) (*Summary, error) {
	j.Options.defaults()
	teacher, err := verify.LoadModel(j.Original)
	if err != nil {
		if strings.Contains(err.Error(), "unsupported architecture") {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		return nil, err
	}
	if !verify.IsCausalLM(teacher.Config) && teacher.Config.ModelType != "vit" {
		return nil, fmt.Errorf("%w: %s has no logits to match", ErrUnsupported, teacher.Config.Architecture())
	}
	vm, err := vlora.Load(j.Input)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Output: j.Output}
	var train *verify.Dataset
	if j.Data != "" {
		if train, err = verify.LoadData(j.Data, "", 0, j.SeqLen); err != nil {
			return nil, err
		}
		if train.SHA256, _, err = convert.HashFile(ctx, j.Data); err != nil {
			return nil, err
		}
	} else {
		if !verify.IsCausalLM(teacher.Config) {
			return nil, fmt.Errorf("%w: data-free distillation needs a language model; pass --data", formats.ErrInvalid)
		}
		n, t := j.PoolSize, j.SeqLen
		if n <= 0 {
			n = 4 * j.Batch
		}
		if t <= 0 {
			t = 128
		}
		if mp := teacher.Config.MaxPositions; mp > 0 && t > mp {
			t = mp
		}
		if train, err = verify.SampleLM(ctx, teacher.Model, teacher.Config, n, t, j.Seed); err != nil {
			return nil, err
		}
	}
	if !train.IsImages() {
		if err := train.CheckRange(teacher.Config.VocabSize, teacher.Config.Int("type_vocab_size")); err != nil {
			return nil, err
		}
	}
	sum.TrainData = train.Source

	dir := filepath.Dir(j.Output)
	ckpt := filepath.Join(dir, "distill.ckpt.safetensors")
	if j.CheckpointPath == "" {
		j.CheckpointPath = ckpt
	}
	if j.Resume {
		if _, err := os.Stat(j.CheckpointPath); err == nil {
			sum.Resumed = true
		}
	}
	res, runErr := Run(ctx, teacher.Model, vm, train, j.Options)
	if runErr != nil {
		return nil, runErr
	}
	sum.Steps, sum.Tokens, sum.FinalLoss = res.Steps, res.Tokens, res.FinalLoss
	sum.TokensPerSecond, sum.TrainSeconds = res.TokensPerSecond, res.TrainSeconds
	if res.StorageBits > 0 {
		var n int64
		for _, p := range teacher.Model.Params {
			n += int64(len(p.Data))
		}
		sum.BitsPerWeight = float64(res.StorageBits) / float64(n)
	}

	// Evaluate the distilled student against the teacher.
	student, err := verify.FromVLoRA(vm, j.Output)
	if err != nil {
		return nil, err
	}
	var eval *verify.Dataset
	if j.EvalData != "" {
		n := j.EvalSamples
		if n <= 0 {
			n = 64
		}
		if eval, err = verify.LoadData(j.EvalData, "", n, j.SeqLen); err != nil {
			return nil, err
		}
	} else if verify.IsCausalLM(teacher.Config) {
		n, t := j.EvalSamples, j.SeqLen
		if n <= 0 {
			n = 16
		}
		if t <= 0 {
			t = min(128, max(train.T, 2))
		}
		if mp := teacher.Config.MaxPositions; mp > 0 && t > mp {
			t = mp
		}
		if eval, err = verify.SampleLM(ctx, teacher.Model, teacher.Config, n, t, j.Seed+0x9e3779b9); err != nil {
			return nil, err
		}
	}
	if eval != nil {
		m, err := verify.Compare(ctx, teacher.Model, student.Model, verify.IsCausalLM(teacher.Config), eval, 8)
		if err != nil {
			return nil, err
		}
		sum.EvalKL, sum.EvalAgreement, sum.EvalData = *m.KLMean, *m.Top1Agreement, eval.Source
		if m.NLLCompressed != nil {
			sum.EvalNLL = *m.NLLCompressed
		}
	}

	// Record the run and write the result.
	prev := vm.Manifest.Distill
	info := &vlora.DistillInfo{
		Steps: res.Steps, Tokens: res.Tokens, Seed: j.Seed, LR: j.LR, Batch: j.Batch, SeqLen: train.T,
		Train: string(j.Train), FinalLoss: res.FinalLoss, EvalKL: sum.EvalKL, EvalData: sum.EvalData,
		Temperature: j.Temperature, HiddenWeight: j.HiddenWeight,
		Data: train.Source, DataSHA256: train.SHA256,
	}
	if prev != nil {
		info.Steps += prev.Steps
		info.Tokens += prev.Tokens
	}
	vm.Manifest.Distill = info
	if err := vm.Save(j.Output); err != nil {
		return nil, err
	}
	sum.ParamsStored = vm.Manifest.Counts.ParamsStored
	base := strings.TrimSuffix(j.Output, ".safetensors")
	sum.LossCSV, sum.LossPlot = base+".loss.csv", base+".loss.png"
	if err := WriteLossCSV(sum.LossCSV, res.Log); err != nil {
		return nil, err
	}
	title := fmt.Sprintf("distillation: K=%d, %s base, %d steps × %d", vm.Manifest.CompoundSize, vm.Manifest.BaseMode, res.Steps, j.Batch)
	if err := WriteLossPlot(sum.LossPlot, title, res.Log); err != nil {
		return nil, err
	}
	os.Remove(j.CheckpointPath)
	os.Remove(OptimPath(j.CheckpointPath))
	return sum, nil
}
