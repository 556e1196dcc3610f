package vlora

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// TestCheckFinite places NaN and ±Inf at the edges of CheckFinite's blocks
// and unrolled groups, in float32 and float64, and checks that the first one
// is reported at its element index (offset included) and that finite data,
// including the largest values, passes.
func TestCheckFinite(t *testing.T) {
	n := 2*finiteBlock + 7
	for _, pos := range []int{0, 3, 4, finiteBlock - 1, finiteBlock, 2*finiteBlock + 2, n - 1} {
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			t.Run(fmt.Sprintf("%v at %d", bad, pos), func(t *testing.T) {
				d32 := make([]float32, n)
				d64 := make([]float64, n)
				for i := range d32 {
					d32[i], d64[i] = math.MaxFloat32, -math.MaxFloat64/2
				}
				d32[pos], d64[pos] = float32(bad), bad
				want := fmt.Sprintf("element %d", 100+pos)
				for _, err := range []error{CheckFinite("w", d32, 100), CheckFinite("w", d64, 100)} {
					if err == nil || !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), want) {
						t.Errorf("error %v, want one wrapping ErrInvalid at %s", err, want)
					}
				}
			})
		}
	}
	t.Run("finite", func(t *testing.T) {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(i%7-3) / 3 * math.MaxFloat32
		}
		if err := CheckFinite("w", d, 0); err != nil {
			t.Error(err)
		}
	})
}
