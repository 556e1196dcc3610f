package convert

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestRandomizedMatchesExactBytellama compresses bytellama with both SVD
// methods and checks, increment by increment, that the randomized
// Frobenius error is within 1% of the exact one.
func TestRandomizedMatchesExactBytellama(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	tmp := t.TempDir()
	errs := map[svd.Method]map[string]float64{}
	for _, m := range []svd.Method{svd.Exact, svd.Randomized} {
		opt := Options{}
		opt.Base = vlora.BaseMean
		opt.SVD, opt.Seed = m, 7
		res, err := Compress(context.Background(), dir, filepath.Join(tmp, m.String()), opt)
		if err != nil {
			t.Fatal(err)
		}
		errs[m] = map[string]float64{}
		for _, inc := range res.Manifest.Increments {
			if inc.Kind == vlora.KindLowRank {
				errs[m][res.Manifest.LayerPrefix+string(rune('0'+inc.Layer))+"."+inc.Suffix] = inc.RelError
			}
		}
	}
	if len(errs[svd.Exact]) != 56 {
		t.Fatalf("%d low-rank increments, want 56", len(errs[svd.Exact]))
	}
	for name, exact := range errs[svd.Exact] {
		rnd := errs[svd.Randomized][name]
		if rnd > exact*1.01 {
			t.Errorf("%s: randomized error %.5f exceeds exact %.5f by more than 1%%", name, rnd, exact)
		}
		if rnd < exact*(1-1e-9) {
			t.Errorf("%s: randomized error %.5f below the optimum %.5f (Eckart–Young violated)", name, rnd, exact)
		}
	}
}
