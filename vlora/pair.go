package vlora

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/vlora-convert/vlora-convert/formats"
)

// ErrSourceMismatch is wrapped (together with formats.ErrInvalid) by
// CheckPair's errors when a VLoRA file was not made from the checkpoint it
// is paired with.
var ErrSourceMismatch = errors.New("not the original of this VLoRA file")

// CheckPair checks that ck is the checkpoint mf was compressed from: the
// same architecture, every original tensor present with the recorded shape
// and dtype and no other, and, when hashes is set, every source file with
// the SHA-256 the manifest records. Every command that pairs a VLoRA file
// with an original runs it before any work; hashes may be skipped only on
// an explicit request. The error wraps formats.ErrInvalid and
// ErrSourceMismatch and names the first tensor or file that differs.
func CheckPair(ctx context.Context, mf *Manifest, ck *formats.Checkpoint, hashes bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %w: %s", ck.Dir, formats.ErrInvalid, ErrSourceMismatch, fmt.Sprintf(format, a...))
	}
	if ck.Config != nil && mf.Architecture != "" && ck.Config.Architecture() != mf.Architecture {
		return bad("architecture %s, the file was made from %s", ck.Config.Architecture(), mf.Architecture)
	}
	want := map[string]TensorDesc{}
	for _, p := range mf.Passthrough {
		want[p.Name] = p
	}
	for l := range mf.NumLayers {
		for _, s := range mf.Suffixes {
			want[fmt.Sprintf("%s%d.%s", mf.LayerPrefix, l, s.Name)] = s
		}
	}
	for _, n := range ck.Names() {
		d, ok := want[n]
		if !ok {
			return bad("tensor %q is not in the VLoRA file", n)
		}
		ti, _ := ck.Info(n)
		if !slices.Equal(ti.Shape, d.Shape) || ti.DType.String() != d.DType {
			return bad("tensor %q is %s %v, the file records %s %v", n, ti.DType, ti.Shape, d.DType, d.Shape)
		}
		delete(want, n)
	}
	for n := range want {
		return bad("tensor %q of the VLoRA file is missing", n)
	}
	if !hashes {
		return nil
	}
	recorded := map[string]SourceFile{}
	for _, s := range mf.Sources {
		recorded[s.Name] = s
	}
	for _, f := range ck.Files {
		name := filepath.Base(f.Path())
		rec, ok := recorded[name]
		if !ok {
			return bad("%s is not among the recorded sources", name)
		}
		sum, _, err := formats.HashFile(ctx, f.Path())
		if err != nil {
			return err
		}
		if sum != rec.SHA256 {
			return bad("%s has SHA-256 %.12s…, the file records %.12s…", name, sum, rec.SHA256)
		}
	}
	return nil
}
