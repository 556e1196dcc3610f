package convert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Expand materializes every original tensor of the VLoRA model at path
// (file or directory) and writes a dense Hugging Face checkpoint to outDir:
// model.safetensors under the original names and dtypes, plus config.json.
func Expand(ctx context.Context, path, outDir string) error {
	m, err := vlora.Load(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	names := m.OriginalNames()
	specs := make([]formats.TensorSpec, len(names))
	for i, n := range names {
		dt, err := formats.ParseDType(m.OriginalDType(n))
		if err != nil {
			return fmt.Errorf("tensor %q: %w", n, err)
		}
		specs[i] = formats.TensorSpec{Name: n, DType: dt, Shape: m.OriginalShape(n)}
	}
	out := filepath.Join(outDir, formats.SingleFile)
	w, err := formats.Create(out, map[string]string{"format": "pt"}, specs)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return err
		}
		data, _, err := m.Tensor(n)
		if err != nil {
			w.Abort()
			return err
		}
		if err := w.WriteFloat32(n, data); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	if len(m.Manifest.Config) > 0 {
		if err := formats.WriteFileAtomic(filepath.Join(outDir, formats.ConfigFile), indentJSON(m.Manifest.Config)); err != nil {
			return fmt.Errorf("writing config.json: %w", err)
		}
	}
	return nil
}
