package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
	"gonum.org/v1/gonum/mat"
)

// Result describes a finished compression.
type Result struct {
	// Path is the written VLoRA file.
	Path     string
	Manifest *vlora.Manifest
	// Model is the compressed model in memory, exactly as the file holds it
	// (values rounded to the stored dtype); set when Options.KeepModel is.
	Model *vlora.Model
	// DenseFallbacks lists the 2-D increments stored dense because their
	// factors would have been at least as large.
	DenseFallbacks []string
}

// Compress reads the checkpoint in modelDir and writes
// outDir/model.vlora.safetensors and outDir/config.json. Memory stays
// bounded by a few copies of the largest layer tensor per worker: the mean
// base is accumulated by streaming, and each increment is computed from one
// layer tensor at a time. On error or cancellation no output file is left
// behind. Invalid options and input wrap formats.ErrInvalid.
func Compress(ctx context.Context, modelDir, outDir string, opt Options) (*Result, error) {
	prm, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	ck, st, err := openSource(modelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	al, err := alignment(ctx, ck, st, Options(prm))
	if err != nil {
		return nil, err
	}
	if err := prepareOutput(outDir); err != nil {
		return nil, err
	}
	mf := newManifest(ck, st, prm, nil)
	mf.Align = alignInfo(al)
	sp, err := newSpool(outDir, prm.DType)
	if err != nil {
		return nil, err
	}
	defer sp.close()
	// The source files are hashed while the tensors are factorized: the
	// manifest that records the sums is written last.
	hctx, cancelHash := context.WithCancel(ctx)
	defer cancelHash()
	hashed := make(chan error, 1)
	go func() {
		var err error
		mf.Sources, err = hashSources(hctx, ck)
		hashed <- err
	}()
	p := &pipeline{ck: ck, st: st, opt: prm, sp: sp, mf: mf, align: al}
	p.total = p.units()
	if err := p.run(ctx); err != nil {
		cancelHash()
		<-hashed
		return nil, err
	}
	if err := <-hashed; err != nil {
		return nil, err
	}
	if err := p.finishManifest(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{Path: filepath.Join(outDir, vlora.FileName), Manifest: mf, DenseFallbacks: p.fallbacks}
	if err := writeOutput(res.Path, ck.Config, mf, sp); err != nil {
		return nil, err
	}
	if prm.KeepModel {
		if res.Model, err = sp.model(mf); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// openSource opens the checkpoint in modelDir and finds its layer stack;
// every tensor must be floating-point.
func openSource(modelDir string) (*formats.Checkpoint, *vlora.Stack, error) {
	ck, err := formats.OpenCheckpoint(modelDir)
	if err != nil {
		return nil, nil, err
	}
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		ck.Close()
		return nil, nil, fmt.Errorf("%s: %w: %v", modelDir, formats.ErrInvalid, err)
	}
	if ck.Config != nil {
		if err := ck.Config.CheckLayers(st.NumLayers); err != nil {
			ck.Close()
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(modelDir, formats.ConfigFile), err)
		}
	}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		if !formats.IsFloat(ti.DType) {
			ck.Close()
			return nil, nil, fmt.Errorf("%s: %w: tensor %q has non-float dtype %s", ti.File, formats.ErrInvalid, n, ti.DType)
		}
	}
	return ck, st, nil
}

// prepareOutput creates outDir and checks that it can hold new files.
func prepareOutput(outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	return checkWritable(outDir)
}

// newManifest describes the file Compress is about to write, as far as it is
// known before the increments are computed.
func newManifest(ck *formats.Checkpoint, st *vlora.Stack, opt params, sources []vlora.SourceFile) *vlora.Manifest {
	mf := &vlora.Manifest{
		Format: vlora.FormatName, FormatVersion: vlora.FormatVersion, ToolVersion: Version,
		Sources: sources, LayerPrefix: st.Prefix, NumLayers: st.NumLayers,
		CompoundSize: opt.CompoundSize, Compounds: vlora.Compounds(st.NumLayers, opt.CompoundSize),
		BaseMode: opt.Base, SuffixBases: opt.SuffixBases, DType: opt.DType.String(),
		SVD: vlora.SVDInfo{Method: opt.SVD.String(), Rank: opt.Rank, Energy: opt.Energy, Seed: opt.Seed},
	}
	if opt.SVD == svd.Randomized {
		mf.SVD.Oversample = cmp0(opt.Oversample, svd.DefaultOversample)
		mf.SVD.PowerIters = cmp0(opt.PowerIters, svd.DefaultPowerIters)
	}
	if ck.Config != nil {
		mf.Architecture = ck.Config.Architecture()
		mf.Config = json.RawMessage(compactJSON(ck.Config.Bytes))
	}
	for _, s := range st.Suffixes {
		mf.Suffixes = append(mf.Suffixes, vlora.TensorDesc{Name: s, Shape: st.Shapes[s], DType: st.DTypes[s]})
	}
	for _, n := range ck.Names() {
		ti, _ := ck.Info(n)
		mf.Counts.ParamsOriginal += int64(ti.NumElements())
		mf.Counts.BytesOriginal += ti.Size
		if _, _, in := st.Split(n); in {
			mf.Counts.StackOriginal += int64(ti.NumElements())
			continue
		}
		mf.Passthrough = append(mf.Passthrough, vlora.TensorDesc{Name: n, Shape: ti.Shape, DType: ti.DType.String()})
	}
	return mf
}

// units counts the progress units of the run: pass-through tensors, bases
// and increments.
func (p *pipeline) units() int {
	n := len(p.mf.Passthrough) + len(p.mf.Compounds)*len(p.st.Suffixes)
	for _, c := range p.mf.Compounds {
		for _, s := range p.st.Suffixes {
			k := len(c)
			if p.mf.BaseFor(s) == vlora.BaseFirst {
				k--
			}
			n += k
		}
	}
	return n
}

// finishManifest orders the increments, lists the dense fallbacks, checks
// the manifest and fills in the stored counts.
func (p *pipeline) finishManifest() error {
	mf := p.mf
	sort.Slice(mf.Increments, func(i, j int) bool {
		a, b := mf.Increments[i], mf.Increments[j]
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		return a.Suffix < b.Suffix
	})
	for _, inc := range mf.Increments {
		if inc.Reason != "" {
			p.fallbacks = append(p.fallbacks, fmt.Sprintf("%s: %s", p.st.Name(inc.Layer, inc.Suffix), inc.Reason))
		}
	}
	if err := mf.Validate(); err != nil {
		return fmt.Errorf("internal: %w", err)
	}
	for _, shape := range mf.ExpectedTensors() {
		mf.Counts.ParamsStored += int64(vlora.NumElements(shape))
	}
	mf.Counts.BytesStored = mf.Counts.ParamsStored * int64(p.opt.DType.Size())
	mf.Counts.StackStored = mf.Counts.ParamsStored - (mf.Counts.ParamsOriginal - mf.Counts.StackOriginal)
	return nil
}

// writeOutput writes the spooled tensors in storage order into outPath,
// atomically, and config.json beside it.
func writeOutput(outPath string, cfg *formats.Config, mf *vlora.Manifest, sp *spool) error {
	dtype, err := formats.ParseDType(mf.DType)
	if err != nil {
		return fmt.Errorf("internal: %w", err)
	}
	mf.FormatVersion = mf.NeededVersion()
	names := mf.StorageOrder()
	expect := mf.ExpectedTensors()
	specs := make([]formats.TensorSpec, len(names))
	for i, n := range names {
		specs[i] = formats.TensorSpec{Name: n, DType: dtype, Shape: expect[n]}
	}
	js, err := mf.Marshal()
	if err != nil {
		return err
	}
	w, err := formats.Create(outPath, map[string]string{vlora.ManifestKey: js}, specs)
	if err != nil {
		return err
	}
	if err := sp.writeTo(w, names); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	if cfg != nil {
		if err := formats.WriteFileAtomic(filepath.Join(filepath.Dir(outPath), formats.ConfigFile), cfg.Bytes); err != nil {
			os.Remove(outPath)
			return fmt.Errorf("writing config.json: %w", err)
		}
	}
	return nil
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return max(v, 0)
}

func compactJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	out, _ := json.Marshal(v)
	return out
}

// checkWritable fails early, with a clear message, when dir cannot hold new
// files.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".vlora-write-test-*")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// hashSources returns the SHA-256 of every checkpoint file.
func hashSources(ctx context.Context, ck *formats.Checkpoint) ([]vlora.SourceFile, error) {
	out := make([]vlora.SourceFile, len(ck.Files))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, f := range ck.Files {
		g.Go(func() error {
			sum, n, err := formats.HashFile(ctx, f.Path())
			if err != nil {
				return err
			}
			out[i] = vlora.SourceFile{Name: filepath.Base(f.Path()), SHA256: sum, Bytes: n}
			return nil
		})
	}
	return out, g.Wait()
}

// pipeline holds the state of one Compress run.
type pipeline struct {
	ck        *formats.Checkpoint
	st        *vlora.Stack
	opt       params
	sp        *spool
	mf        *vlora.Manifest
	mu        sync.Mutex
	done      int
	total     int
	fallbacks []string
	// align, when set, transforms every layer tensor as it is read.
	align *align.Alignment
	// svdThreads is the number of goroutines each factorization's products
	// use: 1 when tensors are factorized in parallel, one per core.
	svdThreads int
}

func (p *pipeline) report(item string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.opt.Progress != nil {
		p.opt.Progress(stage.Progress{Stage: stage.Compress, Done: p.done, Total: p.total, Item: item})
	}
}

// readChecked reads tensor name as float32, checks that it is finite and
// aligns it when the run aligns.
func (p *pipeline) readChecked(name string) ([]float32, error) {
	data, err := p.ck.ReadFloat32(name)
	if err != nil {
		return nil, err
	}
	if err := checkFinite(p.ck, name, data, 0); err != nil {
		return nil, err
	}
	return data, align.Apply(p.align, name, data)
}

// checkFinite checks data, the elements of tensor name of ck from offset on,
// and names the checkpoint file in the error.
func checkFinite[T float32 | float64](ck *formats.Checkpoint, name string, data []T, offset int) error {
	if err := vlora.CheckFinite(name, data, offset); err != nil {
		ti, _ := ck.Info(name)
		return fmt.Errorf("%s: %w", ti.File, err)
	}
	return nil
}

// run processes pass-through tensors and every (compound, suffix) pair on
// Workers goroutines.
func (p *pipeline) run(ctx context.Context) error {
	workers := p.opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers > 1 {
		p.svdThreads = 1
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, pt := range p.mf.Passthrough {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := p.passthrough(pt); err != nil {
				return err
			}
			p.report(pt.Name)
			return nil
		})
	}
	for c, layers := range p.mf.Compounds {
		for si, s := range p.st.Suffixes {
			g.Go(func() error { return p.compound(gctx, c, layers, si, s) })
		}
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("compression cancelled: %w", err)
	}
	return err
}

// passthroughChunk is the number of elements of a pass-through tensor
// converted at a time (16 MiB of float32).
const passthroughChunk = 1 << 22

// passthrough copies a tensor outside the layer stack into the spool in
// chunks, checking that every value is finite, so that even a large
// embedding matrix costs only a chunk of memory.
func (p *pipeline) passthrough(pt vlora.TensorDesc) error {
	n := vlora.NumElements(pt.Shape)
	buf := make([]float32, min(n, passthroughChunk))
	return p.sp.putChunks(pt.Name, pt.Shape, n, func(off int) ([]float32, error) {
		chunk := buf[:min(len(buf), n-off)]
		if err := p.ck.ReadFloat32At(pt.Name, off, chunk); err != nil {
			return nil, err
		}
		if err := checkFinite(p.ck, pt.Name, chunk, off); err != nil {
			return nil, err
		}
		return chunk, nil
	})
}

// compound computes the base and increments of one suffix in one compound.
// The base is the first layer or the mean accumulated in float64, stored
// as float32; increments are taken against the stored base. With the mean,
// the compound's layer tensors read for it are kept for their increments,
// so that every tensor is read and converted once: K+1 layer tensors per
// worker at most.
func (p *pipeline) compound(ctx context.Context, c int, layers []int, si int, suffix string) error {
	mode := p.mf.BaseFor(suffix)
	base, kept, err := p.base(ctx, layers, suffix, mode)
	if err != nil {
		return err
	}
	if base != nil {
		if err := p.sp.put(vlora.BaseName(c, suffix), p.st.Shapes[suffix], base); err != nil {
			return err
		}
	}
	p.report(vlora.BaseName(c, suffix))
	for j, l := range layers {
		if j == 0 && mode == vlora.BaseFirst {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var w []float32
		if kept != nil {
			w, kept[j] = kept[j], nil
		} else if w, err = p.readChecked(p.st.Name(l, suffix)); err != nil {
			return err
		}
		if err := p.increment(l, si, suffix, base, w); err != nil {
			return fmt.Errorf("layer %d %s: %w", l, suffix, err)
		}
	}
	return nil
}

// base returns the base of suffix over layers for mode (compoundBase) from
// the checked float32 layer tensors.
func (p *pipeline) base(ctx context.Context, layers []int, suffix string, mode vlora.BaseMode) ([]float32, [][]float32, error) {
	return compoundBase(ctx, p.readChecked, p.st, layers, suffix, mode)
}

// compoundBase returns the base of suffix over layers for mode: nil for
// BaseZero, the first layer, or the element-wise mean accumulated in
// float64. With the mean it also returns the layer tensors read for it, so
// that their increments need not read them again.
func compoundBase[T float32 | float64](ctx context.Context, read func(string) ([]T, error), st *vlora.Stack, layers []int, suffix string, mode vlora.BaseMode) ([]T, [][]T, error) {
	switch mode {
	case vlora.BaseZero:
		return nil, nil, nil
	case vlora.BaseFirst:
		w, err := read(st.Name(layers[0], suffix))
		return w, nil, err
	}
	var sum []float64
	var kept [][]T
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		w, err := read(st.Name(l, suffix))
		if err != nil {
			return nil, nil, err
		}
		if sum == nil {
			sum = make([]float64, len(w))
		}
		for i, v := range w {
			sum[i] += float64(v)
		}
		kept = append(kept, w)
	}
	inv := 1 / float64(len(layers))
	base := make([]T, len(sum))
	for i, v := range sum {
		base[i] = T(v * inv)
	}
	return base, kept, nil
}

// increment factorizes W_l − base (W_l when base is nil), where w holds W_l
// (and is overwritten), and spools the result.
func (p *pipeline) increment(l, si int, suffix string, base, w []float32) error {
	shape := p.st.Shapes[suffix]
	var wnorm float64
	for i, v := range w {
		wnorm += float64(v) * float64(v)
		if base != nil {
			w[i] = v - base[i] // w now holds the increment Δ
		}
	}
	wnorm = math.Sqrt(wnorm)
	inc := vlora.IncrementDesc{Layer: l, Suffix: suffix}
	rows, cols := vlora.Matrix(shape)
	dense := func(reason string) error {
		inc.Kind, inc.Energy, inc.Reason = vlora.KindDense, 1, reason
		if err := p.sp.put(vlora.DeltaName(l, suffix), shape, w); err != nil {
			return err
		}
		p.addIncrement(inc)
		return nil
	}
	name := p.st.Name(l, suffix)
	rank, energy, reason, keepDense := p.choose(name, shape)
	if keepDense {
		return dense(reason)
	}
	f, resid, err := p.factorize(name, l, si, w, rows, cols, rank, energy)
	if err != nil {
		return err
	}
	if energy > 0 && svd.DenseIsSmaller(rows, cols, f.Rank) {
		return dense(fmt.Sprintf("rank %d for energy %g holds %d values, the dense increment %d", f.Rank, p.opt.Energy, f.Rank*(rows+cols), rows*cols))
	}
	inc.Kind, inc.Rank, inc.Energy = vlora.KindLowRank, f.Rank, f.EnergyFraction()
	if wnorm > 0 {
		inc.RelError = resid / wnorm
	}
	if err := p.putFactors(l, suffix, f, rows, cols); err != nil {
		return err
	}
	p.addIncrement(inc)
	return nil
}

// choose returns the rank or energy for the increment of the layer tensor
// name, or whether it is stored dense and why (empty for 1-D tensors).
func (p *pipeline) choose(name string, shape []int) (rank int, energy float64, reason string, dense bool) {
	rows, cols := vlora.Matrix(shape)
	fixed, hasFixed := p.opt.Ranks[name]
	rank, energy = p.opt.Rank, p.opt.Energy
	if hasFixed {
		energy = 0
		if fixed >= 0 {
			rank = fixed
		}
	}
	switch {
	case len(shape) < 2:
		return 0, 0, "", true
	case hasFixed && fixed == DenseIncrement:
		return 0, 0, "the parameter budget keeps it dense", true
	case hasFixed && svd.DenseIsSmaller(rows, cols, min(rank, rows, cols)):
		return 0, 0, fmt.Sprintf("budget rank %d holds at least the dense increment", rank), true
	case !hasFixed && p.opt.Energy >= 1:
		return 0, 0, "energy 1 keeps the increment exactly", true
	case !hasFixed && p.opt.Rank > 0 && svd.DenseIsSmaller(rows, cols, min(p.opt.Rank, rows, cols)):
		r := min(p.opt.Rank, rows, cols)
		return 0, 0, fmt.Sprintf("rank %d factors hold %d values, the dense increment %d", r, r*(rows+cols), rows*cols), true
	}
	return rank, energy, "", false
}

// factorize truncates the increment d (rows×cols) of the layer tensor name:
// in the whitened space of its Gram matrix when Options.Grams has one, else
// by the configured SVD on the float32 kernels. It also returns the weight
// error ‖Δ − B·A‖_F.
func (p *pipeline) factorize(name string, l, si int, d []float32, rows, cols, rank int, energy float64) (*svd.Factors, float64, error) {
	if g := p.opt.Grams[name]; g != nil {
		if energy > 0 {
			return nil, 0, fmt.Errorf("%w: whitened truncation needs a rank, not an energy", formats.ErrInvalid)
		}
		d64 := make([]float64, len(d))
		for i, v := range d {
			d64[i] = float64(v)
		}
		dm := mat.NewDense(rows, cols, d64)
		f, err := svd.Whitened(dm, g, min(rank, rows, cols), svd.DefaultDamping)
		if err != nil {
			return nil, 0, err
		}
		// The whitened spectrum measures activation error; the manifest
		// records the weight error.
		if f.Rank > 0 {
			var e mat.Dense
			e.Mul(f.B, f.A)
			dm.Sub(dm, &e)
		}
		return f, mat.Norm(dm, 2), nil
	}
	f, err := svd.FactorizeFloat32(d, rows, cols, svd.Options{
		Method: p.opt.SVD, Rank: rank, Energy: energy,
		Oversample: p.opt.Oversample, PowerIters: p.opt.PowerIters,
		Seed:    p.opt.Seed ^ (uint64(l)<<20 | uint64(si)),
		Threads: p.svdThreads,
	})
	if err != nil {
		return nil, 0, err
	}
	return f, math.Sqrt(math.Max(0, (1-f.EnergyFraction())*f.TotalEnergy)), nil
}

// putFactors spools the factors of f (rows×r and r×cols) in float32.
func (p *pipeline) putFactors(l int, suffix string, f *svd.Factors, rows, cols int) error {
	b := make([]float32, rows*f.Rank)
	a := make([]float32, f.Rank*cols)
	if f.Rank > 0 {
		for i := range rows {
			for k := range f.Rank {
				b[i*f.Rank+k] = float32(f.B.At(i, k))
			}
		}
		for k := range f.Rank {
			for j := range cols {
				a[k*cols+j] = float32(f.A.At(k, j))
			}
		}
	}
	if err := p.sp.put(vlora.LoraBName(l, suffix), []int{rows, f.Rank}, b); err != nil {
		return err
	}
	return p.sp.put(vlora.LoraAName(l, suffix), []int{f.Rank, cols}, a)
}

func (p *pipeline) addIncrement(inc vlora.IncrementDesc) {
	p.mu.Lock()
	p.mf.Increments = append(p.mf.Increments, inc)
	p.mu.Unlock()
	p.report(fmt.Sprintf("layer %d %s", inc.Layer, inc.Suffix))
}

func indentJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return append(out, '\n')
}
