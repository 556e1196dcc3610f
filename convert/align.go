package convert

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Align computes the symmetry alignment (package align, reference the
// compound mean) of the checkpoint in modelDir cut into compounds of
// opt.CompoundSize layers, as Compress and PlanBudget do with Options.Align.
// A caller that needs it for more than one of them (or to align the dense
// model it calibrates on) computes it once and passes it as
// Options.Alignment.
func Align(ctx context.Context, modelDir string, opt Options) (*align.Alignment, error) {
	ck, st, err := openSource(modelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return alignment(ctx, ck, st, opt)
}

// alignment returns opt.Alignment, checked against the checkpoint's
// compounds, or computes it; nil without opt.Align.
func alignment(ctx context.Context, ck *formats.Checkpoint, st *vlora.Stack, opt Options) (*align.Alignment, error) {
	if !opt.Align {
		return nil, nil
	}
	compounds := vlora.Compounds(st.NumLayers, cmp.Or(opt.CompoundSize, DefaultCompoundSize))
	if a := opt.Alignment; a != nil {
		if !slices.EqualFunc(a.Compounds, compounds, slices.Equal) || len(a.Layers) != st.NumLayers {
			return nil, fmt.Errorf("%w: the given alignment was computed for other compounds", formats.ErrInvalid)
		}
		return a, nil
	}
	read := func(name string) ([]float32, error) {
		data, err := ck.ReadFloat32(name)
		if err != nil {
			return nil, err
		}
		return data, checkFinite(ck, name, data, 0)
	}
	a, err := align.Compute(ctx, read, ck.Config, st, compounds, align.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Dir, err)
	}
	return a, nil
}

// alignInfo describes a in the manifest; nil for no alignment.
func alignInfo(a *align.Alignment) *vlora.AlignInfo {
	if a == nil {
		return nil
	}
	return &vlora.AlignInfo{Reference: string(a.Reference), Iterations: a.Iterations}
}
