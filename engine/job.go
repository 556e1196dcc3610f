package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Job is one distillation on the engine, described as distill.Run would
// take it.
type Job struct {
	// Init is the VLoRA file to start from, Manifest its manifest;
	// Original the original's Hugging Face directory; Out the file to write.
	Init     string
	Manifest *vlora.Manifest
	Original string
	Out      string
	// Train is the training data as loaded by dataset.Load (or sampled);
	// TrainFile, when set, is a token safetensors file holding exactly
	// Train, passed to the engine as it is (else Train is written to a
	// temporary file).
	Train     *dataset.Dataset
	TrainFile string
	// Eval and EvalFile are the evaluation data, likewise (nil: none).
	Eval     *dataset.Dataset
	EvalFile string
	// Distill are the recipe's options, with the meanings distill.Run
	// gives them. LocalSteps and Precondition have no engine counterpart.
	Distill distill.Options
	// Augment and AugmentPrefix add continuations of the training data by
	// the original, sampled by the engine (see vlora-convert distill
	// --augment).
	Augment, AugmentPrefix int
	// EvalSamples is the number of evaluation items (0: the engine's
	// default).
	EvalSamples int
	// SeqLen is vlora-convert distill's --seq-len (0: the data's length),
	// which the engine applies to the files it is given as they are.
	// Prepared token files are already of Train's and Eval's lengths.
	SeqLen int
}

// Check reports what of j the engine cannot run. Errors wrap
// formats.ErrInvalid and name the flag.
func (j *Job) Check() error {
	o := j.Distill
	switch {
	case o.LocalSteps > 0:
		return fmt.Errorf("%w: --local-steps is not supported by the PyTorch engine", formats.ErrInvalid)
	case o.Precondition:
		return fmt.Errorf("%w: --scaled-gd is not supported by the PyTorch engine", formats.ErrInvalid)
	case j.Train == nil || j.Train.N == 0:
		return fmt.Errorf("%w: no training data", formats.ErrInvalid)
	case j.Train.IsImages():
		return fmt.Errorf("%w: --data %s: the PyTorch engine trains on token data, not images", formats.ErrInvalid, j.Train.Source)
	case o.Tokens > 0 && o.Steps > 0:
		return fmt.Errorf("%w: set at most one of --steps and --tokens", formats.ErrInvalid)
	}
	return nil
}

// Steps returns the number of steps j runs: Distill.Steps, or the steps
// that train on Distill.Tokens (distill.StepsForTokens).
func (j *Job) Steps() int {
	if j.Distill.Tokens > 0 {
		return distill.StepsForTokens(j.Distill.Tokens, j.batch(), j.Train.T)
	}
	return j.Distill.Steps
}

// LR returns the peak learning rate: Distill.LR, or distill's default for
// the file's storage (distill.DefaultLRFor).
func (j *Job) LR() float64 {
	if j.Distill.LR > 0 {
		return j.Distill.LR
	}
	return distill.DefaultLRFor(j.Distill.Quant, j.Manifest)
}

func (j *Job) batch() int {
	if j.Distill.Batch <= 0 {
		return distill.DefaultBatch
	}
	return j.Distill.Batch
}

// items returns the size of the training set the engine draws batches
// from: the data and its continuations.
func (j *Job) items() int { return j.Train.N + j.Augment }

// Prepare writes the engine's input files into dir (the token data when
// no file holds it as it is, and the batch order of distill.BatchIndices)
// and returns the engine's arguments, every value resolved.
func (j *Job) Prepare(dir string) ([]string, error) {
	if err := j.Check(); err != nil {
		return nil, err
	}
	if j.Manifest == nil {
		return nil, fmt.Errorf("%w: %s: no manifest", formats.ErrInvalid, j.Init)
	}
	train := j.TrainFile
	if train == "" {
		train = filepath.Join(dir, "train.safetensors")
		if err := WriteTokens(train, j.Train); err != nil {
			return nil, err
		}
	}
	eval := j.EvalFile
	if eval == "" && j.Eval != nil {
		eval = filepath.Join(dir, "eval.safetensors")
		if err := WriteTokens(eval, j.Eval); err != nil {
			return nil, err
		}
	}
	steps, batch := j.Steps(), j.batch()
	order := filepath.Join(dir, "batch-order.safetensors")
	if err := WriteBatchOrder(order, j.Distill.Seed, steps, batch, j.items()); err != nil {
		return nil, err
	}
	o := j.Distill
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	dflt := func(v, d float64) float64 {
		if v <= 0 {
			return d
		}
		return v
	}
	warmup := o.Warmup
	if warmup == 0 {
		warmup = distill.DefaultWarmup
	}
	decay := o.Decay.String()
	train0 := string(o.Train)
	if train0 == "" {
		train0 = string(distill.TrainBases)
	}
	args := []string{j.Init, "--original", j.Original, "--out", j.Out,
		"--data", train, "--batch-order", order,
		"--steps", strconv.Itoa(steps), "--batch", strconv.Itoa(batch), "--seq-len", strconv.Itoa(j.SeqLen),
		"--lr", f(j.LR()), "--warmup", strconv.Itoa(warmup), "--decay", decay,
		"--min-lr-ratio", f(dflt(o.MinLRRatio, distill.DefaultMinLRRatio)),
		"--clip", f(o.ClipNorm), "--weight-decay", f(o.WeightDecay), "--beta2", f(dflt(o.Beta2, 0.999)),
		"--base-lr-scale", f(dflt(o.LRScales.Bases, 1)), "--pass-lr-scale", f(dflt(o.LRScales.Passthrough, 1)),
		"--train", train0, "--temperature", f(dflt(o.Temperature, 1)), "--hidden-weight", f(o.HiddenWeight),
		"--seed", strconv.FormatUint(o.Seed, 10), "--checkpoint-every", strconv.Itoa(o.CheckpointEvery),
	}
	if o.HiddenDecay {
		args = append(args, "--hidden-decay")
	}
	if j.Augment > 0 {
		args = append(args, "--augment", strconv.Itoa(j.Augment), "--augment-prefix", strconv.Itoa(j.AugmentPrefix))
	}
	if eval != "" {
		args = append(args, "--eval-data", eval)
		if j.EvalSamples > 0 {
			args = append(args, "--eval-samples", strconv.Itoa(j.EvalSamples))
		}
	}
	if o.Resume {
		args = append(args, "--resume")
	}
	return args, nil
}

// TempDir creates the folder of a job's input files beside out (on the
// same file system, out of the way of other runs); the caller removes it.
func TempDir(out string) (string, error) {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".vlora-engine-*")
	if err != nil {
		return "", fmt.Errorf("engine inputs: %w", err)
	}
	return dir, nil
}
