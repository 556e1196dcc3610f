package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/quant"
)

// TestInBands checks that inBands runs every row exactly once, in the
// bands of its contract, whether the workers are spinning, parked or not
// yet started, and from several callers at once.
func TestInBands(t *testing.T) {
	for _, tc := range []struct {
		rows, bands int
		work        time.Duration // per band: 0, or longer than bandSpin
	}{
		{0, 2, 0}, {1, 2, 0}, {2, 2, 0}, {7, 3, 0}, {1000, 2, 0}, {1001, 5, 0}, {13, 9, 0}, {64, 12, 0},
		{10, 2, 3 * bandSpin}, {11, 3, 3 * bandSpin},
	} {
		t.Run(fmt.Sprintf("rows=%d/bands=%d/work=%v", tc.rows, tc.bands, tc.work), func(t *testing.T) {
			var wg sync.WaitGroup
			for c := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for it := range 20 {
						hits := make([]atomic.Int32, tc.rows)
						var bandsSeen atomic.Int32
						inBands(tc.rows, tc.bands, func(r0, r1 int) {
							bandsSeen.Add(1)
							ok := false
							for k := range tc.bands {
								if r0 == tc.rows*k/tc.bands && r1 == tc.rows*(k+1)/tc.bands {
									ok = true
								}
							}
							if !ok {
								t.Errorf("band [%d, %d) is not one of %d bands of %d rows", r0, r1, tc.bands, tc.rows)
							}
							for r := r0; r < r1; r++ {
								hits[r].Add(1)
							}
							if tc.work > 0 {
								time.Sleep(tc.work)
							}
						})
						if n := int(bandsSeen.Load()); n != tc.bands {
							t.Errorf("caller %d, call %d: %d bands ran, want %d", c, it, n, tc.bands)
						}
						for r := range hits {
							if h := hits[r].Load(); h != 1 {
								t.Errorf("caller %d, call %d: row %d ran %d times", c, it, r, h)
								return
							}
						}
						if it%7 == 3 {
							time.Sleep(4 * bandSpin) // let the workers park
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestBandWorkersExit checks that band workers do not outlive their use:
// bandIdle after the last product, the process is back to the goroutines
// it had before.
func TestBandWorkersExit(t *testing.T) {
	waitIdle := func() int {
		// Workers of earlier tests exit within bandIdle of their last band.
		time.Sleep(bandIdle + 50*time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := waitIdle()
	for range 50 {
		inBands(100, 3, func(r0, r1 int) {})
	}
	if n := runtime.NumGoroutine(); n < before+2 {
		t.Fatalf("%d goroutines while bands run, want the two workers above %d", n, before)
	}
	deadline := time.Now().Add(10 * bandIdle)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines %v after the last product, want %d", runtime.NumGoroutine(), 10*bandIdle, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Exited workers start again for the next product.
	var rows atomic.Int32
	inBands(100, 3, func(r0, r1 int) { rows.Add(int32(r1 - r0)) })
	if rows.Load() != 100 {
		t.Fatalf("%d rows after the workers exited, want 100", rows.Load())
	}
}

// TestMulStoredBandsBitIdentical checks that splitting a product into bands
// does not change its arithmetic: with 2, 3 and 4 threads every output is
// bit for bit the single-thread one, on every kernel path.
func TestMulStoredBandsBitIdentical(t *testing.T) {
	cases := []storedCase{
		{"bf16", 1031, 520, BF16, quant.Scheme{}},
		{"bf16-odd", 1029, 531, BF16, quant.Scheme{}},
		{"f16", 1031, 520, F16, quant.Scheme{}},
		{"int8-g32", 1031, 1056, Quant, quant.Scheme{Bits: 8, GroupSize: 32}},
		{"int4-g32", 2051, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
		{"int4-g64", 2053, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 64}},
		{"int4-g32-cols64", 33001, 64, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	}
	forEachStoredPath(t, func(t *testing.T) {
		for _, tc := range cases {
			for _, n := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/n=%d", tc.name, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(tc.rows), uint64(n)))
					w, _ := tc.build(t, rng)
					x := make([]float32, n*tc.cols)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					want := make([]float32, n*tc.rows)
					Options{Threads: 1}.MulStored(n, x, tc.cols, w, want, tc.rows, 0)
					for _, threads := range []int{2, 3, 4} {
						got := make([]float32, n*tc.rows)
						Options{Threads: threads}.MulStored(n, x, tc.cols, w, got, tc.rows, 0)
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("threads=%d: y[%d] = %v, single thread %v", threads, i, got[i], want[i])
							}
						}
					}
				})
			}
		}
	})
}
