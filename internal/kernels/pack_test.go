package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPackBT compares every assembly packer of transposed B panels with the
// portable packBT, element by element (packing only copies, so the results
// must be identical), for all panel widths and several depths, including a
// row stride too large for 32-bit gather offsets.
func TestPackBT(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, kern := range supportedKernels() {
		if kern.packT == nil {
			continue
		}
		nr := kern.nr
		for _, kb := range []int{1, 5, 17, 64} {
			for cols := 1; cols <= nr; cols++ {
				ldb := kb + 3
				b := randomVector(rng, cols*ldb)
				want := make([]float32, nr*kb)
				got := make([]float32, nr*kb)
				for i := range got {
					got[i] = sentinel // must be overwritten, padding included
				}
				packBT(want, b, ldb, kb, cols, nr)
				kern.packT(got, b, ldb, kb, cols)
				if !slices.Equal(got, want) {
					t.Fatalf("%s kb=%d cols=%d: packed panel differs from packBT", kern.name, kb, cols)
				}
			}
		}
		t.Run(fmt.Sprintf("%s/huge stride", kern.name), func(t *testing.T) {
			// With one column only b[0:kb] is read, whatever the stride.
			const kb = 9
			b := randomVector(rng, kb)
			want := make([]float32, nr*kb)
			got := make([]float32, nr*kb)
			packBT(want, b, 1<<31, kb, 1, nr)
			kern.packT(got, b, 1<<31, kb, 1)
			if !slices.Equal(got, want) {
				t.Fatal("packed panel differs from packBT")
			}
		})
	}
}
