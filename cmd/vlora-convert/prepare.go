package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// preparedData is what the distillation stage reads, loaded and checked
// before anything is written: the teacher, the training data and the
// evaluation data (nil when there is none).
type preparedData struct {
	teacher     *model.Model
	train, eval *dataset.Dataset
}

// minSamplePool is the fewest sequences data-free mode samples by default.
const minSamplePool = 64

// evalSeedOffset separates the seed of sampled evaluation data from the
// training seed.
const evalSeedOffset = 0x9e3779b9

// prepareFromDir loads the teacher from dir and the training and
// evaluation data the flags name (or samples them from the teacher), and
// seed seeds sampled data; checks the data against the teacher's vocabulary and the memory budget.
// A teacher the stage cannot train gives distill.ErrUnsupported.
func (d *distillFlags) prepareFromDir(ctx context.Context, dir string, seed uint64, pb bars) (*preparedData, error) {
	teacher, err := model.LoadDenseAs(dir, model.Auto)
	if errors.Is(err, model.ErrUnsupportedArchitecture) {
		return nil, fmt.Errorf("%w: %v", distill.ErrUnsupported, err)
	}
	if err != nil {
		return nil, err
	}
	p := &preparedData{teacher: teacher}
	if p.train, err = d.trainData(ctx, teacher, seed, pb); err != nil {
		return nil, err
	}
	if p.eval, err = d.evalDataFor(ctx, teacher, p.train, seed, pb); err != nil {
		return nil, err
	}
	cfg := teacher.Config
	for _, ds := range []*dataset.Dataset{p.train, p.eval} {
		if ds == nil || ds.IsImages() {
			continue
		}
		if err := ds.CheckRange(cfg.VocabSize, cfg.Int("type_vocab_size")); err != nil {
			return nil, fmt.Errorf("%s: %w", ds.Source, err)
		}
	}
	what := fmt.Sprintf("--batch %d × sequence length %d", d.batch, p.train.T)
	if err := dataset.CheckBatchBudget(what, dataset.BatchBytes(cfg, d.batch, p.train.T), teacher.StoredParams); err != nil {
		return nil, err
	}
	return p, nil
}

// loadOptions returns the options that read the stage's data files:
// samples items (0: all) of sequences truncated or cut to --seq-len, text
// encoded with --tokenizer (default: the teacher's), images preprocessed as
// the teacher's preprocessor_config.json says.
func (d *distillFlags) loadOptions(teacher *model.Model, samples int) dataset.LoadOptions {
	return dataset.LoadOptions{Samples: samples, SeqLen: d.seqLen, MaxSeqLen: teacher.Config.MaxPositions,
		TokenizerPath: cmp.Or(d.tokenizer, teacher.Path), TextField: d.textField, Stride: d.stride,
		Preprocessor: teacher.Path}
}

// trainData loads the training data, or samples it from the teacher.
func (d *distillFlags) trainData(ctx context.Context, teacher *model.Model, seed uint64, pb bars) (*dataset.Dataset, error) {
	if d.data != "" {
		ds, err := dataset.Load(ctx, d.data, d.loadOptions(teacher, 0))
		if err != nil || d.augment == 0 {
			return ds, err
		}
		// The default recipe continues plain token sequences of language
		// models only.
		if d.augmentIfLM && (!teacher.IsCausalLM() || ds.IsImages() || ds.T < 2 || ds.TokenTypes != nil || ds.Score != nil || ds.Labels != nil) {
			return ds, nil
		}
		if !ds.IsImages() {
			if err := ds.CheckRange(teacher.Config.VocabSize, teacher.Config.Int("type_vocab_size")); err != nil {
				return nil, fmt.Errorf("%s: %w", ds.Source, err)
			}
		}
		return d.augmented(ctx, teacher, ds, seed, pb)
	}
	if !teacher.IsCausalLM() {
		if teacher.Config.ModelType != "vit" {
			return nil, fmt.Errorf("%w: %s has no logits to match", distill.ErrUnsupported, teacher.Config.Architecture())
		}
		return nil, fmt.Errorf("%w: data-free distillation needs a language model; pass --data", formats.ErrInvalid)
	}
	n := d.pool
	if n <= 0 {
		n = max(4*cmp.Or(d.batch, distill.DefaultBatch), minSamplePool)
	}
	t := dataset.SeqLen(d.seqLen, dataset.DefaultSeqLen, teacher.Config.MaxPositions)
	what := fmt.Sprintf("--samples %d (default 4 × --batch) sequences of %d tokens", n, t)
	if err := dataset.CheckBudget(what, dataset.SampleBytes(teacher.Config, n, t)); err != nil {
		return nil, err
	}
	return sampleWithBar(ctx, teacher, n, t, seed, pb)
}

// augmented returns ds followed by --augment continuations of its
// sequences by the teacher.
func (d *distillFlags) augmented(ctx context.Context, teacher *model.Model, ds *dataset.Dataset, seed uint64, pb bars) (*dataset.Dataset, error) {
	if !teacher.IsCausalLM() || ds.IsImages() {
		return nil, fmt.Errorf("%w: --augment needs a language model and token data", formats.ErrInvalid)
	}
	keep := d.augmentPrefix
	if keep == 0 {
		keep = max(1, min(32, ds.T/8))
	}
	if keep >= ds.T {
		return nil, fmt.Errorf("%w: --augment-prefix %d must be below the sequence length %d of %s", formats.ErrInvalid, keep, ds.T, d.data)
	}
	bar := pb.start("augment")
	defer bar.Close()
	more, err := dataset.Continue(ctx, teacher, ds, d.augment, keep, seed, bar.Report)
	if err != nil {
		return nil, fmt.Errorf("--augment: %w", err)
	}
	return dataset.Concat(ds, more)
}

// evalDataFor loads the evaluation data, or samples it from the teacher
// (causal LMs); nil when there is none.
func (d *distillFlags) evalDataFor(ctx context.Context, teacher *model.Model, train *dataset.Dataset, seed uint64, pb bars) (*dataset.Dataset, error) {
	if d.evalData != "" {
		return dataset.Load(ctx, d.evalData, d.loadOptions(teacher, cmp.Or(d.evalSamples, 64)))
	}
	if !teacher.IsCausalLM() {
		return nil, nil
	}
	n := d.evalSamples
	if n <= 0 || n == 64 {
		n = 16 // sampled evaluation has its own default
	}
	t := dataset.SeqLen(d.seqLen, min(dataset.DefaultSeqLen, max(train.T, 2)), teacher.Config.MaxPositions)
	return sampleWithBar(ctx, teacher, n, t, seed+evalSeedOffset, pb)
}

// sampleWithBar draws n sequences of t tokens from teacher with a "sample"
// progress bar.
func sampleWithBar(ctx context.Context, teacher *model.Model, n, t int, seed uint64, pb bars) (*dataset.Dataset, error) {
	bar := pb.start("sample")
	defer bar.Close()
	return dataset.SampleWithProgress(ctx, teacher, n, t, seed, bar.Report)
}

// loadStudent loads the VLoRA file at path after checking that the
// original in dir is the checkpoint it was made from (vlora.CheckPair;
// hashes unless --skip-source-check).
func (d *distillFlags) loadStudent(ctx context.Context, path, dir string, pb bars) (*vlora.Model, error) {
	mf, f, err := vlora.ReadManifest(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	if err := d.checkSource(ctx, mf, dir); err != nil {
		return nil, err
	}
	bar := pb.start("read")
	defer bar.Close()
	return vlora.LoadWithProgress(path, bar.Report)
}
