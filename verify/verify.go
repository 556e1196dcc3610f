package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Options configures Run.
type Options struct {
	// Data is a safetensors data file (see LoadData); empty means sampled
	// (LMs) or random (encoders, ViT) inputs.
	Data string
	// Labels names an int tensor of Data holding class labels.
	Labels string
	// Samples is the number of sequences or images (0: all of Data, or 8
	// when generating).
	Samples int
	// SeqLen truncates (Data) or sets (generated) the sequence length; 0
	// keeps the data's length, or 128 when generating.
	SeqLen int
	// Seed seeds generated inputs.
	Seed uint64
	// Batch is the evaluation batch size (default 8).
	Batch int
	// MaxKL and MinAgreement are thresholds; zero disables them.
	MaxKL, MinAgreement float64
	// Progress, when set, is called after each evaluated batch.
	Progress func(done, total int)
}

// Report is what verify measures. Optional values are nil when they do not
// apply (for example KL for an encoder without logits).
type Report struct {
	Original   string `json:"original"`
	Compressed string `json:"compressed"`
	Data       string `json:"data"`
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

// Run checks the compressed model against the original directory and
// measures their agreement on data.
func Run(ctx context.Context, originalDir, compressed string, opt Options) (*Report, error) {
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	rep := &Report{Original: originalDir, Compressed: compressed}
	ck, err := formats.OpenCheckpoint(originalDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		rep.ParamsOriginal += int64(ti.NumElements())
		rep.BytesOriginal += ti.Size
	}
	orig, err := LoadModel(originalDir)
	if err != nil {
		return nil, err
	}
	comp, err := LoadModel(compressed)
	if err != nil {
		return nil, err
	}
	if comp.VLoRA != nil {
		mf := comp.VLoRA.Manifest
		rep.ParamsCompressed, rep.BytesCompressed = mf.Counts.ParamsStored, mf.Counts.BytesStored
		rep.Integrity = Integrity(ctx, ck, comp.VLoRA)
	} else {
		cc, err := formats.OpenCheckpoint(compressed)
		if err != nil {
			return nil, err
		}
		for _, n := range cc.Names() {
			ti, _ := cc.Info(n)
			rep.ParamsCompressed += int64(ti.NumElements())
			rep.BytesCompressed += ti.Size
		}
		cc.Close()
	}
	var broken []string
	for _, c := range rep.Integrity {
		if !c.OK {
			broken = append(broken, c.Name+": "+c.Detail)
		}
	}
	if len(broken) > 0 {
		return rep, fmt.Errorf("%s: %w: integrity check failed: %s", compressed, formats.ErrInvalid, strings.Join(broken, "; "))
	}

	data, err := inputs(ctx, orig, opt)
	if err != nil {
		return nil, err
	}
	rep.Data, rep.DataGenerated = data.Source, opt.Data == ""
	if !data.IsImages() {
		if err := data.CheckRange(orig.Config.VocabSize, orig.Config.Int("type_vocab_size")); err != nil {
			return nil, err
		}
	}
	if err := compare(ctx, rep, orig.Model, comp.Model, IsCausalLM(orig.Config), data, opt); err != nil {
		return nil, err
	}
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
	var missed []string
	for _, c := range rep.Thresholds {
		if !c.OK {
			rep.Pass = false
			missed = append(missed, c.Detail)
		}
	}
	if len(missed) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrThreshold, strings.Join(missed, "; "))
	}
	return rep, nil
}

func fmtPtr(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4g", *v)
}

// inputs loads or generates the evaluation inputs.
func inputs(ctx context.Context, orig *Loaded, opt Options) (*Dataset, error) {
	if opt.Data != "" {
		d, err := LoadData(opt.Data, opt.Labels, opt.Samples, opt.SeqLen)
		if err != nil {
			return nil, err
		}
		sum, _, err := formats.HashFile(ctx, opt.Data)
		if err != nil {
			return nil, err
		}
		d.SHA256 = sum
		if opt.Samples > 0 || opt.SeqLen > 0 {
			d.Source = fmt.Sprintf("%s (%d × %d)", filepath.Base(opt.Data), d.N, d.T)
		}
		return d, nil
	}
	if opt.Labels != "" {
		return nil, fmt.Errorf("%w: --labels needs --data", formats.ErrInvalid)
	}
	n, t := opt.Samples, opt.SeqLen
	if n <= 0 {
		n = 8
	}
	if t <= 0 {
		t = 128
		if mp := orig.Config.MaxPositions; mp > 0 && mp < t {
			t = mp
		}
	}
	if IsCausalLM(orig.Config) {
		return SampleLM(ctx, orig.Model, orig.Config, n, t, opt.Seed)
	}
	return RandomInputs(orig.Config, n, t, opt.Seed), nil
}

// compare runs both models over data and fills the quality fields of rep.
func compare(ctx context.Context, rep *Report, orig, comp *transformer.Model, causal bool, data *Dataset, opt Options) error {
	var kls []float64
	var agree, nllO, nllC float64
	var nllCount, correctO, correctC int
	var outErr, poolErr relAccum
	var layerErr []relAccum
	for i := 0; i < data.N; i += opt.Batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		j := min(data.N, i+opt.Batch)
		in := data.Batch(i, j)
		o, err := orig.Forward(in, transformer.Options{Hidden: true})
		if err != nil {
			return fmt.Errorf("original model: %w", err)
		}
		c, err := comp.Forward(in, transformer.Options{Hidden: true})
		if err != nil {
			return fmt.Errorf("compressed model: %w", err)
		}
		if layerErr == nil {
			layerErr = make([]relAccum, len(o.HiddenStates))
		}
		for l := range o.HiddenStates {
			layerErr[l].add(c.HiddenStates[l], o.HiddenStates[l])
		}
		if o.Logits != nil {
			outErr.add(c.Logits, o.Logits)
			v := o.LogitsShape[len(o.LogitsShape)-1]
			rows := len(o.Logits) / v
			lp, lq := make([]float64, v), make([]float64, v)
			for r := 0; r < rows; r++ {
				ro, rc := o.Logits[r*v:(r+1)*v], c.Logits[r*v:(r+1)*v]
				logSoftmax(lp, ro)
				logSoftmax(lq, rc)
				kls = append(kls, KL(lp, lq))
				if argmax(ro) == argmax(rc) {
					agree++
				}
				if causal {
					b, t := r/in.Seq, r%in.Seq
					if t+1 < in.Seq {
						next := in.IDs[b*in.Seq+t+1]
						nllO -= lp[next]
						nllC -= lq[next]
						nllCount++
					}
				} else if data.Labels != nil && len(o.LogitsShape) == 2 {
					label := data.Labels[i+r]
					if argmax(ro) == label {
						correctO++
					}
					if argmax(rc) == label {
						correctC++
					}
				}
			}
		} else {
			outErr.add(c.LastHidden, o.LastHidden)
			if o.Pooler != nil {
				poolErr.add(c.Pooler, o.Pooler)
			}
		}
		rep.Positions += in.Batch * max(in.Seq, 1)
		if opt.Progress != nil {
			opt.Progress(j, data.N)
		}
	}
	rep.OutputRelError = ptr(outErr.value())
	if poolErr.den > 0 {
		rep.PoolerRelError = ptr(poolErr.value())
	}
	for _, l := range layerErr {
		rep.LayerRelError = append(rep.LayerRelError, l.value())
	}
	if len(kls) > 0 {
		d := summarise(kls)
		rep.KLMean, rep.KLP95, rep.KLP99, rep.KLMax = ptr(d.mean), ptr(d.p95), ptr(d.p99), ptr(d.max)
		rep.Top1Agreement = ptr(agree / float64(len(kls)))
		rep.Positions = len(kls)
	}
	if nllCount > 0 {
		no, nc := nllO/float64(nllCount), nllC/float64(nllCount)
		rep.NLLOriginal, rep.NLLCompressed = ptr(no), ptr(nc)
		rep.PPLOriginal, rep.PPLCompressed = ptr(math.Exp(no)), ptr(math.Exp(nc))
		rep.PPLRatio = ptr(math.Exp(nc - no))
	}
	if data.Labels != nil && !causal {
		rep.AccuracyOriginal = ptr(float64(correctO) / float64(data.N))
		rep.AccuracyCompressed = ptr(float64(correctC) / float64(data.N))
	}
	return nil
}

// Integrity checks that the VLoRA model represents every tensor of the
// original checkpoint with the same shape and dtype, that its manifest agrees
// with its tensors, and that the recorded source hashes match ck's files.
func Integrity(ctx context.Context, ck *formats.Checkpoint, vm *vlora.Model) []Check {
	var out []Check
	add := func(name string, problems []string, okDetail string) {
		c := Check{Name: name, OK: len(problems) == 0, Detail: okDetail}
		if !c.OK {
			if len(problems) > 5 {
				problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
			}
			c.Detail = strings.Join(problems, "; ")
		}
		out = append(out, c)
	}
	var probs []string
	orig := ck.Names()
	comp := vm.OriginalNames()
	for _, n := range orig {
		if !vm.Has(n) {
			probs = append(probs, fmt.Sprintf("tensor %s of the original is not represented", n))
		}
	}
	for _, n := range comp {
		if !ck.Has(n) {
			probs = append(probs, fmt.Sprintf("tensor %s is not in the original", n))
		}
	}
	add("tensors", probs, fmt.Sprintf("all %d original tensors represented", len(orig)))

	probs = nil
	for _, n := range orig {
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
	add("shapes-dtypes", probs, "shapes and dtypes agree")

	probs = nil
	mf := vm.Manifest
	if got := vm.StoredParams(); got != mf.Counts.ParamsStored {
		probs = append(probs, fmt.Sprintf("manifest counts %d stored parameters, the file holds %d", mf.Counts.ParamsStored, got))
	}
	var po int64
	for _, n := range orig {
		ti, _ := ck.Info(n)
		po += int64(ti.NumElements())
	}
	if po != mf.Counts.ParamsOriginal {
		probs = append(probs, fmt.Sprintf("manifest counts %d original parameters, the original has %d", mf.Counts.ParamsOriginal, po))
	}
	add("manifest", probs, "manifest consistent with the stored tensors")

	probs = nil
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
	add("source-hashes", probs, fmt.Sprintf("SHA-256 of %d source file(s) match", len(ck.Files)))
	return out
}

// IsCausalLM reports whether the configured architecture is a causal
// language model (next-token logits).
func IsCausalLM(cfg *formats.Config) bool {
	a := cfg.Architecture()
	return strings.HasSuffix(a, "ForCausalLM") || strings.HasSuffix(a, "LMHeadModel")
}

// Compare runs orig and comp over data in batches of batch and returns the
// quality fields of a Report (KL, agreement, NLL, accuracy, hidden-state
// errors). causal selects next-token NLL for language models.
func Compare(ctx context.Context, orig, comp *transformer.Model, causal bool, data *Dataset, batch int) (*Report, error) {
	rep := &Report{Data: data.Source}
	if batch <= 0 {
		batch = 8
	}
	if err := compare(ctx, rep, orig, comp, causal, data, Options{Batch: batch}); err != nil {
		return nil, err
	}
	return rep, nil
}
