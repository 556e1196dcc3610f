package convert

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestParamCountsBytellama checks parameter accounting against the reference
// figures for bytellama at K=8, r=32.
func TestParamCountsBytellama(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	for _, tc := range []struct {
		base vlora.BaseMode
		want int64
	}{
		{vlora.BaseFirst, 766_848},
		{vlora.BaseMean, 841_088},
	} {
		t.Run(string(tc.base), func(t *testing.T) {
			opt := Options{}
			opt.Base = tc.base
			out := t.TempDir()
			res, err := Compress(context.Background(), dir, out, opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Manifest.Counts.ParamsStored; got != tc.want {
				t.Errorf("stored params = %d, want %d", got, tc.want)
			}
			if got := res.Manifest.Counts.ParamsOriginal; got != 1_517_696 {
				t.Errorf("original params = %d, want 1517696", got)
			}
			f, err := formats.Open(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var elems int64
			for _, n := range f.Names() {
				ti, _ := f.Info(n)
				elems += int64(ti.NumElements())
			}
			if elems != tc.want {
				t.Errorf("file holds %d elements, want %d", elems, tc.want)
			}
			if _, err := os.Stat(filepath.Join(out, formats.ConfigFile)); err != nil {
				t.Errorf("config.json not copied: %v", err)
			}
			if _, err := vlora.Load(out); err != nil {
				t.Errorf("reloading: %v", err)
			}
		})
	}
}
