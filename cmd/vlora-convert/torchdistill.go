package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/engine"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// engineFlags choose the engine that runs the distillation stage and the
// settings only the PyTorch engine has.
type engineFlags struct {
	name string
	opt  engine.Options
	fl   *pflag.FlagSet
	// compress is set for compress, whose --dtype sets the SVD stage's
	// float dtype (the engine keeps it).
	compress bool
}

// engineOnly are the flags that only --engine torch takes.
var engineOnly = []string{"nproc", "device", "fsdp", "grad-accum", "activation-checkpointing", "engine-dtype"}

func (e *engineFlags) addFlags(fl *pflag.FlagSet) {
	e.fl = fl
	fl.StringVar(&e.name, "engine", "go", "distillation engine: go (this program, on the CPU) or torch (the PyTorch engine in python/, on GPUs; install it with scripts/pyenv.sh)")
	fl.IntVar(&e.opt.NProc, "nproc", 1, "--engine torch: processes (GPUs), 1…4096; above 1 through torchrun (DDP, or --fsdp)")
	fl.StringVar(&e.opt.Device, "device", "auto", "--engine torch: cpu, cuda, cuda:N or auto")
	fl.BoolVar(&e.opt.FSDP, "fsdp", false, "--engine torch: shard parameters, gradients and optimizer state over the processes (FSDP) instead of replicating them")
	fl.IntVar(&e.opt.GradAccum, "grad-accum", 1, "--engine torch: micro-batches per step (the step's --batch is split), 1…65536")
	fl.BoolVar(&e.opt.ActivationCheckpointing, "activation-checkpointing", false, "--engine torch: recompute each layer's activations in the backward pass (less memory)")
	fl.StringVar(&e.opt.DType, "engine-dtype", "float32", "--engine torch: compute dtype, float32 or bf16 (autocast, float32 master weights)")
}

// torch reports whether the PyTorch engine runs the stage.
func (e *engineFlags) torch() bool { return e.name == "torch" }

// validate checks the engine flags: a known engine, the engine-only flags
// only with --engine torch, and the flags the PyTorch engine has no
// counterpart for not with it.
func (e *engineFlags) validate(d *distillFlags) error {
	switch e.name {
	case "go":
		for _, f := range engineOnly {
			if e.fl != nil && e.fl.Changed(f) {
				return usagef("--%s needs --engine torch", f)
			}
		}
		return nil
	case "torch":
	default:
		return usagef("--engine %q: want go or torch", e.name)
	}
	if e.opt.NProc < 1 {
		return usagef("--nproc %d is outside 1…%d", e.opt.NProc, engine.MaxNProc)
	}
	if e.opt.GradAccum < 1 {
		return usagef("--grad-accum %d is outside 1…65536", e.opt.GradAccum)
	}
	if err := e.opt.Validate(); err != nil {
		return usageError{err}
	}
	switch {
	case d.localSteps > 0:
		return usagef("--local-steps is not supported by --engine torch")
	case d.scaledGD:
		return usagef("--scaled-gd is not supported by --engine torch")
	case d.storage.plan.Active() || (d.storage.set() && !e.compress):
		return usagef("--dtype and --quant are not supported by --engine torch (it keeps the file's storage)")
	case d.recompute && e.fl != nil && e.fl.Changed("activation-checkpointing") && !e.opt.ActivationCheckpointing:
		return usagef("--recompute and --activation-checkpointing=false contradict each other")
	}
	if d.recompute {
		e.opt.ActivationCheckpointing = true // the same trade under the engine's name
	}
	return nil
}

// runTorch runs the distill command's stage on the PyTorch engine (see
// distillFlags.runEngine) into d, then copies config.json and the
// companion files beside the result when it goes to --out.
func (o *distillOptions) runTorch(ctx context.Context, d *outdir.Dir) error {
	rt, err := engineRuntime(ctx)
	if err != nil {
		return err
	}
	target := distillTarget{original: o.original, input: o.input, output: o.output,
		seed: o.seed, quiet: o.quiet, json: o.json}
	if o.out == "" {
		return o.flags.runEngine(ctx, o.streams, rt, target)
	}
	target.output, target.display = filepath.Join(d.Work(), vlora.FileName), o.output
	if err := o.flags.runEngine(ctx, o.streams, rt, target); err != nil {
		return err
	}
	if cfg, err := formats.ReadRegularFile(filepath.Join(filepath.Dir(o.input), "config.json"), formats.MaxConfigSize); err == nil {
		if err := formats.WriteFileAtomic(filepath.Join(d.Work(), "config.json"), cfg); err != nil {
			return err
		}
	}
	return copyCompanions(filepath.Dir(o.input), d.Work())
}

// engineRuntime locates the PyTorch engine and checks, before any work,
// that it runs: the interpreter imports torch, transformers, safetensors
// and vlora_torch. Otherwise the error names scripts/pyenv.sh (exit 2).
func engineRuntime(ctx context.Context) (engine.Runtime, error) {
	rt := engine.DefaultRuntime()
	_, err := rt.Check(ctx)
	return rt, err
}

// runEngine runs the distillation stage on the PyTorch engine: it checks
// the pairing of t.input and the original, prepares the data and the batch
// order as the Go engine would draw them, runs the engine with a progress
// bar and writes the loss log beside the result, then prints the summary.
func (d *distillFlags) runEngine(ctx context.Context, s streams, rt engine.Runtime, t distillTarget) error {
	mf, f, err := vlora.ReadManifest(t.input)
	if err != nil {
		return err
	}
	f.Close()
	if err := d.checkSource(ctx, mf, t.original); err != nil {
		return err
	}
	job, err := d.engineJob(ctx, t.input, mf, t.original, t.seed, bars{s.ErrOut, t.quiet})
	if err != nil {
		return err
	}
	job.Out = t.output
	sum, err := d.launch(ctx, s, rt, job, t.quiet)
	if err != nil {
		return err
	}
	sum.display(t)
	return printDistill(s, sum, t)
}

// checkSource checks that the original in dir is the checkpoint mf was made
// from (vlora.CheckPair; hashes unless --skip-source-check).
func (d *distillFlags) checkSource(ctx context.Context, mf *vlora.Manifest, dir string) error {
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return err
	}
	err = vlora.CheckPair(ctx, mf, ck, !d.skipSourceCheck)
	ck.Close()
	if errors.Is(err, vlora.ErrSourceMismatch) && !d.skipSourceCheck {
		return fmt.Errorf("--original %w (--skip-source-check accepts other files of the same shapes)", err)
	}
	if err != nil {
		return fmt.Errorf("--original %w", err)
	}
	return nil
}

// engineJob loads the stage's data as the Go engine would (text encoded
// with the original's tokenizer, cut to --seq-len; sampled from the
// original without --data) and describes the run.
func (d *distillFlags) engineJob(ctx context.Context, init string, mf *vlora.Manifest, original string, seed uint64, pb bars) (*engine.Job, error) {
	cfg, err := formats.ReadConfig(filepath.Join(original, formats.ConfigFile))
	if err != nil {
		return nil, err
	}
	job := &engine.Job{Init: init, Manifest: mf, Original: original,
		Distill: d.options(seed), EvalSamples: d.evalSamples, SeqLen: d.seqLen}
	lo := dataset.LoadOptions{SeqLen: d.seqLen, MaxSeqLen: cfg.MaxPositions, TokenizerPath: d.tokenizer,
		TextField: d.textField, Stride: d.stride}
	if lo.TokenizerPath == "" {
		lo.TokenizerPath = original
	}
	if d.data != "" {
		if job.Train, err = dataset.Load(ctx, d.data, lo); err != nil {
			return nil, err
		}
		if asIs(d.data, d.seqLen, job.Train) {
			job.TrainFile = d.data
		}
	} else {
		teacher, err := model.LoadDenseAs(original, model.Auto)
		if err != nil {
			return nil, err
		}
		job.Train, err = d.trainData(ctx, teacher, seed, pb)
		teacher.Close()
		if err != nil {
			return nil, err
		}
	}
	if d.evalData != "" {
		elo := lo
		elo.Samples = cmp.Or(d.evalSamples, 64)
		if job.Eval, err = dataset.Load(ctx, d.evalData, elo); err != nil {
			return nil, err
		}
		if asIs(d.evalData, d.seqLen, job.Eval) {
			job.EvalFile = d.evalData
		}
	}
	for _, ds := range []*dataset.Dataset{job.Train, job.Eval} {
		if ds == nil {
			continue
		}
		if ds.IsImages() {
			return nil, usagef("%s: --engine torch trains on token data, not images", ds.Source)
		}
		if err := ds.CheckRange(cfg.VocabSize, cfg.Int("type_vocab_size")); err != nil {
			return nil, fmt.Errorf("%s: %w", ds.Source, err)
		}
	}
	if d.augment > 0 {
		job.Augment = d.augment
		job.AugmentPrefix = d.augmentPrefix
		if job.AugmentPrefix == 0 {
			job.AugmentPrefix = max(1, min(32, job.Train.T/8))
		}
		if job.AugmentPrefix >= job.Train.T {
			return nil, usagef("--augment-prefix %d must be below the sequence length %d of %s", job.AugmentPrefix, job.Train.T, d.data)
		}
	}
	if err := job.Check(); err != nil {
		return nil, err
	}
	return job, nil
}

// asIs reports whether the engine can read the data file path as it is: a
// token safetensors file taken whole (no --seq-len), so that the engine
// records the file the user named.
func asIs(path string, seqLen int, ds *dataset.Dataset) bool {
	return strings.EqualFold(filepath.Ext(path), ".safetensors") && seqLen == 0 && ds.Score == nil
}

// launch prepares the job's inputs in a temporary folder beside the output,
// runs the engine with a progress bar and ETA, and writes the loss log and
// plot beside the result from the engine's step events.
func (d *distillFlags) launch(ctx context.Context, s streams, rt engine.Runtime, job *engine.Job, quiet bool) (*distillSummary, error) {
	tmp, err := engine.TempDir(job.Out)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	args, err := job.Prepare(tmp)
	if err != nil {
		return nil, err
	}
	steps := job.Steps()
	res := &distill.Result{Steps: steps}
	var last engine.Event
	bar := newProgress(s.ErrOut, quiet, "distill", int64(steps), func() string {
		tps := 0.0
		if last.ElapsedS > 0 {
			tps = float64(last.Tokens) / last.ElapsedS
		}
		return fmt.Sprintf("loss %.4f  %.0f tok/s", last.Loss, tps)
	})
	var evalKL, evalNLL, evalAgreement float64
	l := &engine.Launch{Runtime: rt, Args: args, Options: d.eng.opt, Stderr: s.ErrOut, OnEvent: func(ev engine.Event) {
		switch ev.Event {
		case "start":
			res.Resumed = ev.StartStep > 0
		case "step":
			last = ev
			st := distill.Stats{Step: ev.Step, Steps: ev.Steps, Loss: ev.Loss, LR: ev.LR, Tokens: ev.Tokens}
			st.Elapsed = secondsDuration(ev.ElapsedS)
			if ev.ElapsedS > 0 {
				st.TokensPerSec = float64(ev.Tokens) / ev.ElapsedS
			}
			res.Log = append(res.Log, st)
			bar.Report(stage.Progress{Stage: stage.Distill, Done: ev.Step, Total: ev.Steps, Loss: ev.Loss, TokensPerSec: st.TokensPerSec})
		case "eval":
			evalKL, evalNLL, evalAgreement = ev.KL, ev.NLL, ev.Agreement
		}
	}}
	done, err := l.Run(ctx)
	bar.Close()
	if err != nil {
		var ee *engine.ExitError
		if errors.As(err, &ee) {
			if ctx.Err() != nil || ee.Signal != "" {
				return nil, exitError{code: exitFailure, msg: "interrupted (the engine's last checkpoint is kept; rerun with --resume)"}
			}
			return nil, exitError{code: ee.Code}
		}
		return nil, err
	}
	sum := &distillSummary{Output: job.Out, Steps: steps, FinalLoss: done.FinalLoss, TrainData: job.Train.Source,
		Resumed: res.Resumed, EvalNLL: evalNLL, EvalAgreement: evalAgreement, Engine: done.Raw}
	if done.EvalKL != nil {
		sum.EvalKL = *done.EvalKL
	} else {
		sum.EvalKL = evalKL
	}
	if job.Eval != nil {
		sum.EvalData = job.Eval.Source
	}
	if n := len(res.Log); n > 0 {
		lastStat := res.Log[n-1]
		sum.Tokens, sum.TrainSeconds, sum.TokensPerSecond = lastStat.Tokens, lastStat.Elapsed.Seconds(), lastStat.TokensPerSec
	}
	if done.TokensPerSec > 0 {
		sum.TokensPerSecond = done.TokensPerSec
	}
	mf, f, err := vlora.ReadManifest(job.Out)
	if err != nil {
		return nil, fmt.Errorf("reading the engine's output: %w", err)
	}
	f.Close()
	sum.ParamsStored = mf.Counts.ParamsStored
	sum.BitsPerWeight, _ = mf.BitsPerOriginalWeight()
	base := strings.TrimSuffix(job.Out, ".safetensors")
	sum.LossCSV, sum.LossPlot = base+".loss.csv", base+".loss.png"
	if err := writeLossCSV(sum.LossCSV, res); err != nil {
		return nil, err
	}
	title := fmt.Sprintf("distillation (torch): K=%d, %s base, %d steps × %d", mf.CompoundSize, mf.BaseMode, steps, d.batch)
	if err := writeLossPlot(sum.LossPlot, title, res); err != nil {
		return nil, err
	}
	return sum, nil
}

// secondsDuration converts seconds to a time.Duration.
func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
