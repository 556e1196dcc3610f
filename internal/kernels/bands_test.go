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

// TestMulStoredRow checks that a grouped one-row job gives, bit for bit,
// what the products give one at a time on one thread, for products of
// mixed formats and shapes, shared and separate inputs, beta 0 and not,
// with 1 to 3 threads and on every kernel path.
func TestMulStoredRow(t *testing.T) {
	shapes := []storedCase{
		{"int4-g32", 1031, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
		{"int4-g32-small", 67, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
		{"int4-g64", 515, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 64}},
		{"bf16", 301, 1024, BF16, quant.Scheme{}},
		{"bf16-odd", 77, 1027, BF16, quant.Scheme{}},
		{"f16", 129, 1024, F16, quant.Scheme{}},
		{"int8", 257, 1024, Quant, quant.Scheme{Bits: 8, GroupSize: 32}},
		{"int3", 31, 1024, Quant, quant.Scheme{Bits: 3, GroupSize: 32}},
		{"empty", 0, 1024, BF16, quant.Scheme{}},
	}
	forEachStoredPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		ws := make([]*Stored, len(shapes))
		for i, tc := range shapes {
			ws[i], _ = tc.build(t, rng)
		}
		f32 := &Stored{Format: F32, Rows: 5, Cols: 1024, F32: make([]float32, 5*1024)}
		for i := range f32.F32 {
			f32.F32[i] = float32(rng.NormFloat64())
		}
		ws = append(ws, f32)
		inputs := [2][]float32{make([]float32, 1027), make([]float32, 1027)}
		for _, x := range inputs {
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
		}
		for _, threads := range []int{1, 2, 3} {
			for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 0, 9, 6, 1}, {2}, {1, 0}, {8}} {
				t.Run(fmt.Sprintf("threads=%d/%v", threads, order), func(t *testing.T) {
					var ps []RowProduct
					var want [][]float32
					for k, i := range order {
						w := ws[i]
						x := inputs[k%2]
						beta := float32(0)
						if k%3 == 1 {
							beta = 0.75
						}
						y := make([]float32, w.Rows)
						for r := range y {
							y[r] = float32(rng.NormFloat64())
						}
						ref := append([]float32(nil), y...)
						Options{Threads: 1}.MulStored(1, x, w.Cols, w, ref, max(1, w.Rows), beta)
						ps = append(ps, RowProduct{X: x, W: w, Y: y, Beta: beta})
						want = append(want, ref)
					}
					Options{Threads: threads}.MulStoredRow(ps)
					for k, p := range ps {
						for r := range p.Y {
							if math.Float32bits(p.Y[r]) != math.Float32bits(want[k][r]) {
								t.Fatalf("product %d (%s): y[%d] = %v, one at a time %v", k, shapes[min(order[k], len(shapes)-1)].name, r, p.Y[r], want[k][r])
							}
						}
					}
				})
			}
		}
	})
}

// TestRowJobBands checks that the bands of a grouped job tile every
// product's rows exactly.
func TestRowJobBands(t *testing.T) {
	for _, sizes := range [][2]int64{{10, 100}, {1000, 1 << 20}, {3, 7}, {1031, 530432}} {
		j := rowJob{RowProduct: RowProduct{W: &Stored{Rows: int(sizes[0])}}, bytes: sizes[1]}
		for _, bands := range []int64{1, 2, 3, 7} {
			prev := j.rowAt(0)
			if prev != 0 {
				t.Fatalf("first band starts at row %d", prev)
			}
			for b := int64(1); b <= bands; b++ {
				r := j.rowAt(sizes[1] * b / bands)
				if r < prev {
					t.Fatalf("rows %d bytes %d: band %d ends at %d before %d", sizes[0], sizes[1], b, r, prev)
				}
				prev = r
			}
			if prev != int(sizes[0]) {
				t.Fatalf("rows %d bytes %d: last band ends at %d", sizes[0], sizes[1], prev)
			}
		}
	}
}
