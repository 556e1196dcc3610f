package dataset

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// LoadOptions configures Load. The zero value keeps the whole file.
type LoadOptions struct {
	// Labels, when not empty, names an int [N] tensor of the file holding
	// class labels.
	Labels string
	// Samples > 0 keeps the first Samples items.
	Samples int
	// SeqLen > 0 truncates sequences to that length.
	SeqLen int
}

// Load reads a data file and records its SHA-256. The file's type selects
// the reader; a safetensors file (.safetensors) holds "tokens" or
// "input_ids" (int [N, T], with optional "token_type_ids") or
// "pixel_values" (float [N, C, H, W]). Malformed files give errors wrapping
// formats.ErrInvalid.
func Load(ctx context.Context, path string, opt LoadOptions) (*Dataset, error) {
	var d *Dataset
	var err error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".safetensors", "":
		d, err = loadSafetensors(path, opt.Labels)
	default:
		return nil, fmt.Errorf("%s: %w: unknown data file type %q (want .safetensors)", path, formats.ErrInvalid, ext)
	}
	if err != nil {
		return nil, err
	}
	if opt.Samples > 0 && opt.Samples < d.N {
		d.truncateN(opt.Samples)
	}
	if opt.SeqLen > 0 && !d.IsImages() && opt.SeqLen < d.T {
		d.truncateT(opt.SeqLen)
	}
	if d.SHA256, _, err = formats.HashFile(ctx, path); err != nil {
		return nil, err
	}
	return d, nil
}

// loadSafetensors reads a safetensors data file; labels, when not empty,
// names its labels tensor.
func loadSafetensors(path, labels string) (*Dataset, error) {
	f, err := formats.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Dataset{Source: path}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", path, formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	var name string
	for _, n := range []string{"tokens", "input_ids", "pixel_values"} {
		if _, ok := f.Info(n); ok {
			name = n
			break
		}
	}
	switch name {
	case "":
		return nil, bad("no tensor named tokens, input_ids or pixel_values")
	case "pixel_values":
		ti, _ := f.Info(name)
		if len(ti.Shape) != 4 {
			return nil, bad("pixel_values has shape %v, want [N, C, H, W]", ti.Shape)
		}
		px, err := f.ReadFloat32(name)
		if err != nil {
			return nil, err
		}
		d.N, d.C, d.H, d.W = ti.Shape[0], ti.Shape[1], ti.Shape[2], ti.Shape[3]
		d.Pixels = px
	default:
		ti, _ := f.Info(name)
		if len(ti.Shape) != 2 || !formats.IsInt(ti.DType) {
			return nil, bad("%s is %s%v, want an integer [N, T] tensor", name, ti.DType, ti.Shape)
		}
		ids, err := f.ReadInts(name)
		if err != nil {
			return nil, err
		}
		d.N, d.T, d.IDs = ti.Shape[0], ti.Shape[1], ids
		if tt, ok := f.Info("token_type_ids"); ok {
			if len(tt.Shape) != 2 || tt.Shape[0] != d.N || tt.Shape[1] != d.T {
				return nil, bad("token_type_ids has shape %v, want %v", tt.Shape, ti.Shape)
			}
			if d.TokenTypes, err = f.ReadInts("token_type_ids"); err != nil {
				return nil, err
			}
		}
	}
	if labels != "" {
		li, ok := f.Info(labels)
		if !ok {
			return nil, bad("no labels tensor %q", labels)
		}
		if li.NumElements() != d.N || !formats.IsInt(li.DType) {
			return nil, bad("labels %q is %s%v, want int [%d]", labels, li.DType, li.Shape, d.N)
		}
		if d.Labels, err = f.ReadInts(labels); err != nil {
			return nil, err
		}
	}
	if d.N == 0 {
		return nil, bad("the data set is empty")
	}
	return d, nil
}
