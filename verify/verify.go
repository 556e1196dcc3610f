package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Options configures Run. The zero value of every field selects the
// documented default.
type Options struct {
	// Dataset holds the evaluation inputs. When nil, they are read from
	// Data, or else sampled (causal LMs) or drawn at random (encoders, ViT).
	Dataset *dataset.Dataset
	// Data is a data file (see dataset.Load).
	Data string
	// Labels names an int tensor of Data holding class labels.
	Labels string
	// LabelsFromFolders labels the images of an image folder Data by their
	// class sub-folders (see dataset.LoadOptions).
	LabelsFromFolders bool
	// Tokenizer is the tokenizer.json (or a directory holding one) that
	// encodes text Data; default the original model's directory.
	Tokenizer string
	// TextField names the text field of a .jsonl Data file.
	TextField string
	// Stride > 0 measures the perplexity of text Data over Hugging Face's
	// sliding windows of SeqLen tokens every Stride tokens; 0 over
	// llama-perplexity's non-overlapping windows, scoring their second
	// half (see dataset.Windows). KL and agreement are measured on the
	// same positions.
	Stride int
	// Samples is the number of sequences or images (0: all of Data, or
	// DefaultSamples when generating).
	Samples int
	// SeqLen truncates (Data) or sets (generated) the sequence length; 0
	// keeps the data's length, or dataset.DefaultSeqLen when generating.
	// Generated lengths are clamped to the model's learned positions.
	SeqLen int
	// Seed seeds generated inputs.
	Seed uint64
	// Batch is the evaluation batch size (default DefaultBatch).
	Batch int
	// Baseline selects the same-size round-to-nearest baseline measured
	// beside the compressed model (see Baseline): "auto" or "" the standard
	// scheme nearest to the compressed model's bits per weight, "none", or
	// int8, int4, int3, int2 (StandardSchemes).
	Baseline string
	// MaxKL and MinAgreement are thresholds; zero disables them.
	MaxKL, MinAgreement float64
	// FailIfWorse makes losing to the baseline (Baseline.CompressedWins
	// false, or no baseline measured) a missed threshold.
	FailIfWorse bool
	// Progress, when set, is called after each evaluated batch with Stage
	// stage.Verify and Done and Total counting items.
	Progress stage.ProgressFunc
}

// Defaults taken by the zero values of Options.
const (
	DefaultBatch   = 8
	DefaultSamples = 8
)

// params holds Options with every default resolved and validated.
type params Options

// resolve validates o and returns it with defaults applied; errors wrap
// formats.ErrInvalid. Samples stays zero when Data is read whole.
func (o Options) resolve() (params, error) {
	p := params(o)
	if p.Batch < 0 || p.Samples < 0 || p.SeqLen < 0 || p.Stride < 0 || !(p.MaxKL >= 0) || !(p.MinAgreement >= 0) || math.IsInf(p.MaxKL, 0) || p.MinAgreement > 1 {
		return p, fmt.Errorf("%w: batch %d, samples %d, sequence length %d, stride %d and thresholds %g, %g must be finite and not negative (agreement at most 1)",
			formats.ErrInvalid, p.Batch, p.Samples, p.SeqLen, p.Stride, p.MaxKL, p.MinAgreement)
	}
	if (p.Labels != "" || p.LabelsFromFolders || p.Stride > 0) && p.Data == "" {
		return p, fmt.Errorf("%w: --labels, --labels-from-folders and --stride need --data", formats.ErrInvalid)
	}
	if p.FailIfWorse && p.Baseline == BaselineNone {
		return p, fmt.Errorf("%w: failing when worse than the baseline needs a baseline, not %q", formats.ErrInvalid, p.Baseline)
	}
	if p.Baseline != "" && p.Baseline != BaselineAuto && p.Baseline != BaselineNone {
		if _, ok := StandardSchemes[p.Baseline]; !ok {
			return p, fmt.Errorf("%w: baseline %q (want auto, none, int8, int4, int3 or int2)", formats.ErrInvalid, p.Baseline)
		}
	}
	if p.Batch == 0 {
		p.Batch = DefaultBatch
	}
	if p.Samples == 0 && p.Dataset == nil && p.Data == "" {
		p.Samples = DefaultSamples
	}
	return p, nil
}

// Report is what verify measures. Optional values are nil when they do not
// apply (for example KL for an encoder without logits).
type Report struct {
	Original   string `json:"original"`
	Compressed string `json:"compressed"`
	Data       string `json:"data"`
	// PerplexityMethod names the windows text data was cut into and the
	// positions scored, when the data is text.
	PerplexityMethod string `json:"perplexity_method,omitempty"`
	// DataGenerated is true when the inputs were sampled or random.
	DataGenerated bool `json:"data_generated"`
	Positions     int  `json:"positions"`

	KLMean        *float64 `json:"kl_mean"`
	KLP95         *float64 `json:"kl_p95"`
	KLP99         *float64 `json:"kl_p99"`
	KLMax         *float64 `json:"kl_max"`
	Top1Agreement *float64 `json:"top1_agreement"`

	NLLOriginal   *float64 `json:"nll_original"`
	NLLCompressed *float64 `json:"nll_compressed"`
	PPLOriginal   *float64 `json:"ppl_original"`
	PPLCompressed *float64 `json:"ppl_compressed"`
	PPLRatio      *float64 `json:"ppl_ratio"`

	AccuracyOriginal   *float64 `json:"accuracy_original,omitempty"`
	AccuracyCompressed *float64 `json:"accuracy_compressed,omitempty"`

	OutputRelError *float64  `json:"output_rel_error"`
	PoolerRelError *float64  `json:"pooler_rel_error,omitempty"`
	LayerRelError  []float64 `json:"layer_rel_error"`

	ParamsOriginal   int64 `json:"params_original"`
	ParamsCompressed int64 `json:"params_compressed"`
	BytesOriginal    int64 `json:"bytes_original"`
	BytesCompressed  int64 `json:"bytes_compressed"`
	// BitsPerWeight is what the compressed model stores per weight of the
	// original (see BitsPerWeight).
	BitsPerWeight *float64 `json:"bits_per_weight"`
	// Plan is how a VLoRA file stores the original's 2-D tensors, grouped
	// (vlora.Manifest.Plan); nil for a dense model.
	Plan []vlora.PlanGroup `json:"plan,omitempty"`
	// Baseline is the same-size round-to-nearest baseline, nil when off.
	Baseline *Baseline `json:"baseline,omitempty"`

	Integrity []Check `json:"integrity"`
	// Thresholds lists each threshold given and whether it held.
	Thresholds []Check `json:"thresholds"`
	Pass       bool    `json:"pass"`
}

// Check is one named pass/fail test with a detail.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ErrThreshold is returned (wrapped) by Run when a quality threshold is
// missed; the report is still returned.
var ErrThreshold = errors.New("verification threshold missed")

func ptr(v float64) *float64 { return &v }

// CheckCompressedPath refuses a compressed-model path that is not a VLoRA
// file (or a directory holding one): a dense checkpoint cannot be verified
// as the compressed model.
func CheckCompressedPath(path string) error {
	if !model.IsVLoRA(path) {
		return fmt.Errorf("%s: %w: not a VLoRA file (a dense checkpoint cannot be verified as the compressed model)", path, formats.ErrInvalid)
	}
	return nil
}

// RunPaths loads the original model directory and the compressed model (a
// VLoRA file or a directory holding one; a dense checkpoint is refused) and
// runs Run on them. Both run on their weights as stored (model.Stored:
// memory-mapped, never converted to float32 as a whole; a VLoRA layer
// stays its base and factors), so the evaluation's memory is about the two
// stored files; the integrity checks read the VLoRA file's tensors
// (vlora.Load) first and release them before the models run.
func RunPaths(ctx context.Context, originalDir, compressed string, opt Options) (*Report, error) {
	if err := CheckCompressedPath(compressed); err != nil {
		return nil, err
	}
	orig, err := model.LoadDenseAs(originalDir, model.Stored)
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	comp, err := model.LoadAs(compressed, model.Stored)
	if err != nil {
		return nil, err
	}
	defer comp.Close()
	return Run(ctx, orig, comp, opt)
}

// Run checks the compressed model against the original and measures their
// agreement on data. orig must have been loaded from its directory
// (model.LoadDense), whose files the integrity checks read; comp may live in
// memory only. A failed integrity check wraps formats.ErrInvalid; a missed
// threshold wraps ErrThreshold, and the report is returned with it.
func Run(ctx context.Context, orig, comp *model.Model, o Options) (*Report, error) {
	opt, err := o.resolve()
	if err != nil {
		return nil, err
	}
	rep := &Report{Original: orig.Path, Compressed: cmp.Or(comp.Path, "(in memory)"),
		ParamsOriginal: orig.StoredParams, BytesOriginal: orig.StoredBytes,
		ParamsCompressed: comp.StoredParams, BytesCompressed: comp.StoredBytes}
	if err := checkIntegrity(ctx, rep, orig, comp); err != nil {
		return rep, err
	}
	data, err := inputs(ctx, orig, opt)
	if err != nil {
		return nil, err
	}
	if err := dataset.CheckBudget(fmt.Sprintf("verify: batches of %d × %d", opt.Batch, max(data.T, 1)), 2*dataset.BatchBytes(orig.Config, min(opt.Batch, data.N), data.T)); err != nil {
		return nil, err
	}
	rep.Data, rep.DataGenerated = data.Source, opt.Dataset == nil && opt.Data == ""
	rep.PerplexityMethod = perplexityMethod(data, opt.Stride)
	if !data.IsImages() {
		if err := data.CheckRange(orig.Config.VocabSize, orig.Config.Int("type_vocab_size")); err != nil {
			return nil, err
		}
	}
	if err := compare(ctx, rep, orig, comp, data, opt); err != nil {
		return nil, err
	}
	if bits, err := BitsPerWeight(comp, orig.StoredParams); err == nil {
		rep.BitsPerWeight = &bits
		if comp.VLoRA != nil {
			rep.Plan = comp.VLoRA.Manifest.Plan()
		}
	}
	if err := baseline(ctx, rep, orig, data, opt); err != nil {
		return nil, err
	}
	return rep, thresholds(rep, opt)
}

// checkIntegrity runs Integrity when comp is a VLoRA model and fails when a
// check does.
func checkIntegrity(ctx context.Context, rep *Report, orig, comp *model.Model) error {
	if comp.VLoRA == nil && comp.Path != "" && model.IsVLoRA(comp.Path) {
		// A VLoRA file run as stored: its tensors are read for the checks
		// only, and returned to the system before the models run.
		err := func() error {
			vm, err := vlora.Load(comp.Path)
			if err != nil {
				return err
			}
			return integrityOf(ctx, rep, orig, vm)
		}()
		debug.FreeOSMemory()
		return err
	}
	if comp.VLoRA == nil {
		return nil
	}
	return integrityOf(ctx, rep, orig, comp.VLoRA)
}

// integrityOf runs Integrity on the VLoRA model vm against the original
// and fails when a check does.
func integrityOf(ctx context.Context, rep *Report, orig *model.Model, vm *vlora.Model) error {
	if orig.Path == "" {
		return fmt.Errorf("%w: the integrity checks need the original model's directory", formats.ErrInvalid)
	}
	ck, err := formats.OpenCheckpoint(orig.Path)
	if err != nil {
		return err
	}
	defer ck.Close()
	rep.Integrity = Integrity(ctx, ck, vm)
	var broken []string
	for _, c := range rep.Integrity {
		if !c.OK {
			broken = append(broken, c.Name+": "+c.Detail)
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("%s: %w: integrity check failed: %s", rep.Compressed, formats.ErrInvalid, strings.Join(broken, "; "))
	}
	return nil
}

// thresholds records each threshold of opt in rep and sets rep.Pass.
func thresholds(rep *Report, opt params) error {
	rep.Pass = true
	if opt.MaxKL > 0 {
		c := Check{Name: "max-kl", OK: rep.KLMean != nil && *rep.KLMean <= opt.MaxKL}
		c.Detail = fmt.Sprintf("kl_mean %s ≤ %g", fmtPtr(rep.KLMean), opt.MaxKL)
		rep.Thresholds = append(rep.Thresholds, c)
	}
	if opt.MinAgreement > 0 {
		c := Check{Name: "min-agreement", OK: rep.Top1Agreement != nil && *rep.Top1Agreement >= opt.MinAgreement}
		c.Detail = fmt.Sprintf("top1_agreement %s ≥ %g", fmtPtr(rep.Top1Agreement), opt.MinAgreement)
		rep.Thresholds = append(rep.Thresholds, c)
	}
	if opt.FailIfWorse {
		c := Check{Name: "fail-if-worse", Detail: "no same-size baseline could be measured (the model gives no logits)"}
		if b := rep.Baseline; b != nil {
			c.OK = b.CompressedWins
			c.Detail = fmt.Sprintf("no larger and closer to the original than round to nearest %s: %.3f against %.3f bits per weight, KL %.4f against %.4f",
				b.Scheme, *rep.BitsPerWeight, b.BitsPerWeight, *rep.KLMean, b.KLMean)
		}
		rep.Thresholds = append(rep.Thresholds, c)
	}
	for _, v := range []*float64{rep.KLMean, rep.Top1Agreement, rep.OutputRelError, rep.NLLCompressed} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			rep.Thresholds = append(rep.Thresholds, Check{Name: "finite", Detail: "a measured value is not finite (NaN or Inf)"})
			break
		}
	}
	var missed []string
	for _, c := range rep.Thresholds {
		if !c.OK {
			rep.Pass = false
			missed = append(missed, c.Detail)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: %s", ErrThreshold, strings.Join(missed, "; "))
	}
	return nil
}

func fmtPtr(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4g", *v)
}

// inputs returns, loads or generates the evaluation inputs.
func inputs(ctx context.Context, orig *model.Model, opt params) (*dataset.Dataset, error) {
	if opt.Dataset != nil {
		return opt.Dataset, nil
	}
	if opt.Data != "" {
		d, err := dataset.Load(ctx, opt.Data, dataset.LoadOptions{Labels: opt.Labels, Samples: opt.Samples, SeqLen: opt.SeqLen,
			MaxSeqLen: orig.Config.MaxPositions, TokenizerPath: cmp.Or(opt.Tokenizer, orig.Path), TextField: opt.TextField,
			Stride: opt.Stride, Perplexity: true, Preprocessor: orig.Path, LabelsFromFolders: opt.LabelsFromFolders})
		if err != nil {
			return nil, err
		}
		if d.Score != nil || opt.Samples > 0 || opt.SeqLen > 0 {
			d.Source = fmt.Sprintf("%s (%d × %d)", filepath.Base(opt.Data), d.N, d.T)
		}
		return d, nil
	}
	n := opt.Samples
	t := dataset.SeqLen(opt.SeqLen, dataset.DefaultSeqLen, orig.Config.MaxPositions)
	if err := dataset.CheckBudget(fmt.Sprintf("verify: %d generated inputs of %d tokens", n, t), dataset.SampleBytes(orig.Config, n, t)); err != nil {
		return nil, err
	}
	if orig.IsCausalLM() {
		return dataset.Sample(ctx, orig, n, t, opt.Seed)
	}
	return dataset.Random(orig.Config, n, t, opt.Seed), nil
}

// Integrity checks that the VLoRA model represents every tensor of the
// original checkpoint with the same shape and dtype, that its manifest agrees
// with its tensors, and that the recorded source hashes match ck's files.
func Integrity(ctx context.Context, ck *formats.Checkpoint, vm *vlora.Model) []Check {
	orig := ck.Names()
	return []Check{
		check("tensors", representedProblems(ck, vm), fmt.Sprintf("all %d original tensors represented", len(orig))),
		check("shapes-dtypes", shapeProblems(ck, vm), "shapes and dtypes agree"),
		check("manifest", manifestProblems(ck, vm), "manifest consistent with the stored tensors"),
		check("source-hashes", hashProblems(ctx, ck, vm.Manifest), fmt.Sprintf("SHA-256 of %d source file(s) match", len(ck.Files))),
	}
}

// check builds a Check that holds when there are no problems; its detail
// lists the first five problems, or okDetail.
func check(name string, problems []string, okDetail string) Check {
	c := Check{Name: name, OK: len(problems) == 0, Detail: okDetail}
	if !c.OK {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		c.Detail = strings.Join(problems, "; ")
	}
	return c
}

// representedProblems lists original tensors vm does not represent and
// tensors of vm the original does not have.
func representedProblems(ck *formats.Checkpoint, vm *vlora.Model) []string {
	var probs []string
	for _, n := range ck.Names() {
		if !vm.Has(n) {
			probs = append(probs, fmt.Sprintf("tensor %s of the original is not represented", n))
		}
	}
	for _, n := range vm.OriginalNames() {
		if !ck.Has(n) {
			probs = append(probs, fmt.Sprintf("tensor %s is not in the original", n))
		}
	}
	return probs
}

// shapeProblems lists represented tensors whose shape or dtype differ from
// the original's.
func shapeProblems(ck *formats.Checkpoint, vm *vlora.Model) []string {
	var probs []string
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		if !vm.Has(n) {
			continue
		}
		shape := vm.OriginalShape(n)
		if !slices.Equal(shape, ti.Shape) {
			probs = append(probs, fmt.Sprintf("%s: shape %v, original %v", n, shape, ti.Shape))
		}
		if dt := vm.OriginalDType(n); dt != ti.DType.String() {
			probs = append(probs, fmt.Sprintf("%s: dtype %s, original %s", n, dt, ti.DType))
		}
	}
	return probs
}

// manifestProblems compares the manifest's parameter counts with the stored
// tensors and the original.
func manifestProblems(ck *formats.Checkpoint, vm *vlora.Model) []string {
	var probs []string
	mf := vm.Manifest
	if got := vm.StoredParams(); got != mf.Counts.ParamsStored {
		probs = append(probs, fmt.Sprintf("manifest counts %d stored parameters, the file holds %d", mf.Counts.ParamsStored, got))
	}
	var po int64
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		po += int64(ti.NumElements())
	}
	if po != mf.Counts.ParamsOriginal {
		probs = append(probs, fmt.Sprintf("manifest counts %d original parameters, the original has %d", mf.Counts.ParamsOriginal, po))
	}
	return probs
}

// hashProblems compares the SHA-256 of ck's files with the sources the
// manifest records.
func hashProblems(ctx context.Context, ck *formats.Checkpoint, mf *vlora.Manifest) []string {
	var probs []string
	recorded := map[string]vlora.SourceFile{}
	for _, s := range mf.Sources {
		recorded[s.Name] = s
	}
	for _, f := range ck.Files {
		name := filepath.Base(f.Path())
		rec, ok := recorded[name]
		if !ok {
			probs = append(probs, fmt.Sprintf("%s is not among the recorded sources", name))
			continue
		}
		sum, _, err := formats.HashFile(ctx, f.Path())
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if sum != rec.SHA256 {
			probs = append(probs, fmt.Sprintf("%s: SHA-256 %.12s…, recorded %.12s…", name, sum, rec.SHA256))
		}
		delete(recorded, name)
	}
	for n := range recorded {
		probs = append(probs, fmt.Sprintf("recorded source %s is missing from the original", n))
	}
	return probs
}

// perplexityMethod describes the windows of text data and the positions
// they score; "" for data without scored spans.
func perplexityMethod(d *dataset.Dataset, stride int) string {
	if d.Score == nil {
		return ""
	}
	if stride == 0 {
		return fmt.Sprintf("llama-perplexity: %d non-overlapping windows of %d tokens, the last %d targets of each scored", d.N, d.T, d.T-d.T/2-1)
	}
	return fmt.Sprintf("sliding windows (Hugging Face): %d windows of %d tokens every %d, each token scored once", d.N, d.T, stride)
}
