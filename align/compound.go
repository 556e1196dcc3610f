package align

import (
	"context"
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Reference selects what the layers of a compound are aligned to.
type Reference string

const (
	// Mean aligns every layer to the first layer, then Iterations times to
	// the mean of the aligned layers. The default: on bytellama it leaves
	// the layers closer to their compound mean than First (docs/quality.md).
	Mean Reference = "mean"
	// First aligns every layer to the compound's first layer, which stays
	// as it is.
	First Reference = "first"
)

// DefaultIterations is the number of re-alignments to the mean when
// Options.Iterations is zero.
const DefaultIterations = 3

// Options configures Compute. The zero value aligns to the mean with
// DefaultIterations.
type Options struct {
	Reference  Reference
	Iterations int
}

// Alignment is the transform of every layer of a checkpoint's stack.
type Alignment struct {
	Stack      *vlora.Stack
	Layout     *Layout
	Reference  Reference
	Iterations int
	// Compounds are the runs of layers aligned together.
	Compounds [][]int
	// Layers holds one transform per layer; nil leaves the layer as it is.
	Layers []*Transform
}

// Compute aligns the layers of each compound (lists of layer indices) of
// the stack st, read through read, to the compound's reference. cfg gives
// the attention geometry; a checkpoint NewLayout refuses wraps
// ErrUnsupported. The seven matrices of every layer of one compound are held
// in memory at a time, plus the reference.
func Compute(ctx context.Context, read func(name string) ([]float32, error), cfg *formats.Config, st *vlora.Stack, compounds [][]int, opt Options) (*Alignment, error) {
	lay, err := NewLayout(cfg, st)
	if err != nil {
		return nil, err
	}
	if opt.Reference == "" {
		opt.Reference = Mean
	}
	if opt.Iterations == 0 {
		opt.Iterations = DefaultIterations
	}
	if opt.Reference != Mean && opt.Reference != First {
		return nil, fmt.Errorf("%w: alignment reference %q (want mean or first)", formats.ErrInvalid, opt.Reference)
	}
	if opt.Iterations < 0 {
		return nil, fmt.Errorf("%w: alignment iterations %d must be positive", formats.ErrInvalid, opt.Iterations)
	}
	a := &Alignment{Stack: st, Layout: lay, Reference: opt.Reference, Iterations: opt.Iterations,
		Compounds: compounds, Layers: make([]*Transform, st.NumLayers)}
	if opt.Reference == First {
		a.Iterations = 0
	}
	for _, layers := range compounds {
		if len(layers) < 2 {
			continue
		}
		ws := make([]*weights, len(layers))
		for j, l := range layers {
			if ws[j], err = readLayer(ctx, read, lay, st, l); err != nil {
				return nil, err
			}
		}
		ts, err := alignCompound(ctx, lay, ws, a.Iterations)
		if err != nil {
			return nil, fmt.Errorf("aligning layers %d–%d: %w", layers[0], layers[len(layers)-1], err)
		}
		for j, l := range layers {
			a.Layers[l] = ts[j]
		}
	}
	return a, nil
}

// readLayer reads the seven matrices of layer l.
func readLayer(ctx context.Context, read func(string) ([]float32, error), lay *Layout, st *vlora.Stack, l int) (*weights, error) {
	w := &weights{}
	for _, m := range w.matrices() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := read(st.Name(l, roleSuffix(m.r)))
		if err != nil {
			return nil, err
		}
		*m.m = data
	}
	return w, nil
}

// alignCompound returns the transforms of the layers ws: each aligned to
// ws[0] (which keeps the identity), then iterations times to the mean of the
// aligned layers.
func alignCompound(ctx context.Context, lay *Layout, ws []*weights, iterations int) ([]*Transform, error) {
	ts := make([]*Transform, len(ws))
	ts[0] = &Transform{}
	ref := ws[0]
	for it := 0; it <= iterations; it++ {
		if it > 0 {
			var err error
			if ref, err = alignedMean(lay, ws, ts); err != nil {
				return nil, err
			}
		}
		for j, w := range ws {
			if it == 0 && j == 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t, err := solveLayer(lay, w, ref)
			if err != nil {
				return nil, fmt.Errorf("layer %d of the compound: %w", j, err)
			}
			ts[j] = t
		}
	}
	return ts, nil
}

// transformed returns a copy of w under t.
func transformed(lay *Layout, w *weights, t *Transform) (*weights, error) {
	c := w.clone()
	for _, m := range c.matrices() {
		if err := apply(lay, t, m.r, *m.m); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// alignedMean returns the element-wise mean of the layers ws under ts,
// accumulated in float64.
func alignedMean(lay *Layout, ws []*weights, ts []*Transform) (*weights, error) {
	sums := make([][]float64, 7)
	for j, w := range ws {
		c, err := transformed(lay, w, ts[j])
		if err != nil {
			return nil, err
		}
		for i, m := range c.matrices() {
			if sums[i] == nil {
				sums[i] = make([]float64, len(*m.m))
			}
			for k, v := range *m.m {
				sums[i][k] += float64(v)
			}
		}
	}
	mean := &weights{}
	inv := 1 / float64(len(ws))
	for i, m := range mean.matrices() {
		out := make([]float32, len(sums[i]))
		for k, v := range sums[i] {
			out[k] = float32(v * inv)
		}
		*m.m = out
	}
	return mean, nil
}

// Apply re-expresses data, the values of the tensor name, in place under
// a's transform of its layer. Tensors outside the stack, layers without a
// transform and a nil a are left unchanged.
func Apply[T float32 | float64](a *Alignment, name string, data []T) error {
	if a == nil {
		return nil
	}
	l, s, ok := a.Stack.Split(name)
	if !ok || l >= len(a.Layers) || a.Layers[l] == nil {
		return nil
	}
	r, ok := a.Layout.roles[s]
	if !ok {
		return fmt.Errorf("%w: %w: layer tensor %q has no known transform", formats.ErrInvalid, ErrUnsupported, s)
	}
	if err := apply(a.Layout, a.Layers[l], r, data); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
