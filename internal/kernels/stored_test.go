package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
)

// storedCase is one stored matrix of the MulStored conformance suite.
type storedCase struct {
	name       string
	rows, cols int
	format     Format
	scheme     quant.Scheme // Quant only
}

// storedCases covers every format on shapes that are not multiples of the
// vector width (8), the 4-bit chunk (16) or the group size, including
// groups that run across row ends.
var storedCases = []storedCase{
	{"bf16", 37, 77, BF16, quant.Scheme{}},
	{"bf16-wide", 129, 264, BF16, quant.Scheme{}},
	{"bf16-pairs", 19, 96, BF16, quant.Scheme{}},
	{"f16", 37, 77, F16, quant.Scheme{}},
	{"f16-wide", 70, 136, F16, quant.Scheme{}},
	{"int8-row", 41, 83, Quant, quant.Scheme{Bits: 8}},
	{"int8-g32", 19, 96, Quant, quant.Scheme{Bits: 8, GroupSize: 32}},
	{"int8-g32-across", 13, 50, Quant, quant.Scheme{Bits: 8, GroupSize: 32}},
	{"int4-g32", 67, 128, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-g32-full", 67, 96, Quant, quant.Scheme{Bits: 4, GroupSize: 32, Full: true}},
	{"int4-g64", 33, 192, Quant, quant.Scheme{Bits: 4, GroupSize: 64}},
	{"int4-g32-tails", 13, 224, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-g32-two", 9, 64, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-g32-cols64", 83, 64, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-g32-five", 11, 160, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-g32-across", 29, 45, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
	{"int4-odd-cols", 9, 33, Quant, quant.Scheme{Bits: 4, GroupSize: 11}},
	{"int4-row", 23, 61, Quant, quant.Scheme{Bits: 4}},
	{"int3-g32", 31, 70, Quant, quant.Scheme{Bits: 3, GroupSize: 32}},
	{"int2-g32", 31, 70, Quant, quant.Scheme{Bits: 2, GroupSize: 32, Full: true}},
	{"int5-g16", 7, 40, Quant, quant.Scheme{Bits: 5, GroupSize: 16}},
	// Large enough (over 1 MiB) to be split into bands across threads.
	{"bf16-banded", 1031, 520, BF16, quant.Scheme{}},
	{"int4-banded", 2051, 1024, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
}

// build returns the stored matrix of the case and its float64 values, as
// the file's decoder (formats and quant.Dequantize) gives them.
func (tc storedCase) build(t *testing.T, rng *rand.Rand) (*Stored, []float64) {
	n := tc.rows * tc.cols
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	ref := make([]float64, n)
	w := &Stored{Format: tc.format, Rows: tc.rows, Cols: tc.cols}
	switch tc.format {
	case BF16, F16:
		w.Raw = make([]byte, 2*n)
		for i, v := range src {
			var h uint16
			var f float32
			if tc.format == BF16 {
				h = formats.Float32ToBF16(v)
				f = formats.BF16ToFloat32(h)
			} else {
				h = formats.Float32ToF16(v)
				f = formats.F16ToFloat32(h)
			}
			binary.LittleEndian.PutUint16(w.Raw[2*i:], h)
			ref[i] = float64(f)
		}
	case Quant:
		q, err := quant.Quantize(src, tc.rows, tc.cols, tc.scheme)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, n)
		q.Dequantize(deq)
		for i, v := range deq {
			ref[i] = float64(v)
		}
		w.Raw, w.Bits, w.Group = q.Codes, tc.scheme.Bits, tc.scheme.GroupSize
		w.Scales = make([]byte, 2*len(q.Scales))
		for i, h := range q.Scales {
			binary.LittleEndian.PutUint16(w.Scales[2*i:], h)
		}
	}
	if err := w.Check(); err != nil {
		t.Fatal(err)
	}
	return w, ref
}

// storedSumBound is the worst-case relative error of a float32 sum of k
// products in any order, γ = (k+2)·u, plus the scale multiplication:
// |computed − exact| ≤ (k+3)·u·Σ|x_j·w_j|. Every path (assembly, portable,
// decode-and-Sgemm) groups its sums differently, so each is held to this
// bound rather than to one another.
func storedSumBound(k int) float64 { return float64(k+3) * unitRoundoff }

// forEachStoredPath runs f on every implementation this CPU has: the
// portable loops, AVX2, and AVX-512 for one-row products.
func forEachStoredPath(t *testing.T, f func(t *testing.T)) {
	type path struct {
		name        string
		asm, avx512 bool
	}
	paths := []path{{"go", false, false}}
	if storedAsm {
		paths = append(paths, path{"avx2", true, false})
	}
	if storedAVX512 {
		paths = append(paths, path{"avx512", true, true})
	}
	savedAsm, saved512, savedVNNI := storedAsm, storedAVX512, storedVNNI
	defer func() { storedAsm, storedAVX512, storedVNNI = savedAsm, saved512, savedVNNI }()
	for _, p := range paths {
		storedAsm, storedAVX512 = p.asm, p.avx512
		storedVNNI = savedVNNI && p.avx512
		t.Run(p.name, f)
	}
}

func TestMulStored(t *testing.T) {
	forEachStoredPath(t, func(t *testing.T) {
		for _, tc := range storedCases {
			for _, n := range []int{1, 2, 3, 5, 8, 9} {
				if tc.rows*tc.cols > 1<<19 && n != 1 && n != 5 {
					continue // the banded cases: one row, and several
				}
				for _, beta := range []float32{0, 0.5} {
					t.Run(fmt.Sprintf("%s/n=%d/beta=%g", tc.name, n, beta), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(tc.rows*1000+n), 7))
						w, ref := tc.build(t, rng)
						ldx, ldy := tc.cols+3, tc.rows+5
						x := make([]float32, n*ldx)
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						y := make([]float32, n*ldy)
						for i := range y {
							y[i] = sentinel
						}
						y0 := make([]float32, len(y))
						for i := range n {
							for r := range tc.rows {
								y[i*ldy+r] = float32(rng.NormFloat64())
							}
						}
						copy(y0, y)
						Options{Threads: 3}.MulStored(n, x, ldx, w, y, ldy, beta)
						bound := storedSumBound(tc.cols)
						q8 := w.q8Path(n)
						for i := range n {
							for r := range ldy {
								got := y[i*ldy+r]
								if r >= tc.rows {
									if got != sentinel {
										t.Fatalf("y[%d, %d] (padding) overwritten: %v", i, r, got)
									}
									continue
								}
								var want, abs float64
								for c := range tc.cols {
									p := float64(x[i*ldx+c]) * ref[r*tc.cols+c]
									want += p
									abs += math.Abs(p)
								}
								if beta != 0 {
									want += float64(beta) * float64(y0[i*ldy+r])
									abs += math.Abs(float64(beta) * float64(y0[i*ldy+r]))
								}
								quantErr := 0.0
								if q8 {
									quantErr = q8ActivationBound(x[i*ldx:i*ldx+tc.cols], ref[r*tc.cols:(r+1)*tc.cols], w.group())
									abs += quantErr
								}
								if d := math.Abs(float64(got) - want); d > bound*abs+quantErr+1e-30 {
									t.Fatalf("y[%d, %d] = %v, want %v (error %.3g, bound %.3g)", i, r, got, want, d, bound*abs)
								}
							}
						}
					})
				}
			}
		}
	})
}

// q8ActivationBound is the largest change of Σ x_j·w_j that the integer
// kernel's quantization of x to int8 can make: each x_j moves by at most
// half its group's step d_g = max|x_g|/127, so the sum moves by at most
// Σ_j |w_j|·d_g/2 (taken with a relative margin of 1e-6 for the float32
// computation of d_g).
func q8ActivationBound(x []float32, w []float64, g int) float64 {
	var e float64
	for k := 0; k < len(x); k += g {
		var amax float64
		for _, v := range x[k : k+g] {
			amax = max(amax, math.Abs(float64(v)))
		}
		d := amax / 127 * (1 + 1e-6)
		for _, v := range w[k : k+g] {
			e += math.Abs(v) * d / 2
		}
	}
	return e
}

// TestQ4Q8Rows holds the integer kernel's assembly to its portable
// version: the int32 group sums are exact in both, so they differ only by
// the float32 rounding of the per-group products and their sum (FMA
// against multiply-add): (groups+3)·u of the sum of magnitudes.
func TestQ4Q8Rows(t *testing.T) {
	if !storedAsm {
		t.Skip("no assembly on this CPU: the portable kernel is the only one")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range []struct{ rows, groups, chunks int }{{1, 1, 1}, {37, 3, 1}, {5, 7, 2}, {64, 64, 1}, {3, 2, 4}, {9, 4, 1}, {2, 2, 1}} {
		codes := make([]byte, sh.rows*sh.groups*sh.chunks*16)
		for i := range codes {
			codes[i] = byte(rng.IntN(256))
		}
		scales := make([]byte, 2*sh.rows*sh.groups)
		for i := 0; i < len(scales); i += 2 {
			binary.LittleEndian.PutUint16(scales[i:], formats.Float32ToF16(float32(rng.NormFloat64())))
		}
		n := sh.groups * sh.chunks * 32
		xq := make([]int8, n)
		for i := range xq {
			xq[i] = int8(rng.IntN(255) - 127)
		}
		xs := make([]float32, sh.groups)
		for i := range xs {
			xs[i] = float32(rng.Float64())
		}
		xc := make([]int32, sh.groups)
		for k := range xc {
			for _, q := range xq[k*sh.chunks*32 : (k+1)*sh.chunks*32] {
				xc[k] -= 8 * int32(q)
			}
		}
		want := make([]float32, sh.rows)
		q4q8RowsGo(codes, scales, xq, xs, sh.rows, sh.groups, sh.chunks, want)
		// AVX2; VNNI on 256-bit registers (groups of 32 on 512-bit
		// registers run on the block-order kernel, TestQ4Q8Blocks).
		for _, vnni := range []bool{false, true} {
			if vnni && !storedVNNI {
				continue
			}
			saved := storedVNNI
			storedVNNI = vnni
			got := make([]float32, sh.rows)
			q4q8Rows(codes, scales, xq, xs, xc, sh.rows, sh.groups, sh.chunks, got)
			storedVNNI = saved
			for r := range sh.rows {
				var abs float64
				for k := range sh.groups {
					s := math.Abs(float64(f16ToFloat32(binary.LittleEndian.Uint16(scales[2*(r*sh.groups+k):]))) * float64(xs[k]))
					abs += s * 8 * 127 * float64(sh.chunks*32)
				}
				if d := math.Abs(float64(got[r]) - float64(want[r])); d > storedSumBound(sh.groups)*abs {
					t.Fatalf("%+v (VNNI %v) row %d: %v, portable %v", sh, vnni, r, got[r], want[r])
				}
			}
		}
	}
}

// TestQ4Q8Blocks holds the block-order kernel's assembly to its portable
// version (exact int32 group sums in both; float32 rounding of the
// per-group products and their sum differs: (groups+3)·u of the sum of
// magnitudes), and its AVX-512 quantizer to the portable one, exactly.
func TestQ4Q8Blocks(t *testing.T) {
	if !storedVNNI || !storedAVX512 {
		t.Skip("no AVX-512 VNNI on this CPU: the block-order kernel is not used")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sh := range []struct{ rows, groups int }{{1, 1}, {3, 2}, {8, 2}, {16, 2}, {27, 2}, {5, 3}, {7, 4}, {9, 5}, {4, 6}, {6, 7}, {2, 8}, {33, 64}, {5, 176}, {3, 9}} {
		codes := make([]byte, sh.rows*sh.groups*16)
		for i := range codes {
			codes[i] = byte(rng.IntN(256))
		}
		scales := make([]byte, 2*sh.rows*sh.groups)
		for i := 0; i < len(scales); i += 2 {
			binary.LittleEndian.PutUint16(scales[i:], formats.Float32ToF16(float32(rng.NormFloat64())))
		}
		n := sh.groups * 32
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64()) * float32(1+i%5)
		}
		if sh.groups > 2 {
			clear(x[32:64]) // a zero group
		}
		xq, xs4, xc4 := make([]int8, n), make([]float32, 4*sh.groups), make([]int32, 4*sh.groups)
		quantizeQ8Blocks(x, xq, xs4, xc4)
		gq, gs4, gc4 := make([]int8, n), make([]float32, 4*sh.groups), make([]int32, 4*sh.groups)
		func() {
			defer func(saved bool) { storedAVX512 = saved }(storedAVX512)
			storedAVX512 = false
			quantizeQ8Blocks(x, gq, gs4, gc4)
		}()
		for i := range xq {
			if xq[i] != gq[i] {
				t.Fatalf("%+v: quantized element %d: %d, portable %d", sh, i, xq[i], gq[i])
			}
		}
		for i := range xs4 {
			if xs4[i] != gs4[i] || xc4[i] != gc4[i] {
				t.Fatalf("%+v: group entry %d: step %v offset %d, portable %v %d", sh, i, xs4[i], xc4[i], gs4[i], gc4[i])
			}
		}
		want := make([]float32, sh.rows)
		q4q8BlocksGo(codes, scales, xq, xs4, xc4, sh.rows, sh.groups, want)
		got := make([]float32, sh.rows)
		q4q8Blocks(codes, scales, xq, xs4, xc4, sh.rows, sh.groups, got)
		for r := range sh.rows {
			var abs float64
			for k := range sh.groups {
				s := math.Abs(float64(f16ToFloat32(binary.LittleEndian.Uint16(scales[2*(r*sh.groups+k):]))) * float64(xs4[4*k]))
				abs += s * 8 * 127 * 32
			}
			if d := math.Abs(float64(got[r]) - float64(want[r])); d > storedSumBound(sh.groups)*abs {
				t.Fatalf("%+v row %d: %v, portable %v", sh, r, got[r], want[r])
			}
		}
	}
}

func TestStoredDecodeRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range storedCases {
		w, ref := tc.build(t, rng)
		r0, r1 := tc.rows/3, tc.rows-1
		dst := make([]float32, (r1-r0)*tc.cols)
		w.DecodeRows(r0, r1, dst)
		for i, v := range dst {
			if float64(v) != ref[r0*tc.cols+i] {
				t.Fatalf("%s: element %d of rows %d…%d: %v, want %v (exact)", tc.name, i, r0, r1, v, ref[r0*tc.cols+i])
			}
		}
	}
}

func TestStoredCheck(t *testing.T) {
	bad := []*Stored{
		{Format: BF16, Rows: 2, Cols: 3, Raw: make([]byte, 10)},
		{Format: F32, Rows: 2, Cols: 3, F32: make([]float32, 5)},
		{Format: Quant, Rows: 2, Cols: 32, Bits: 4, Group: 32, Raw: make([]byte, 32), Scales: make([]byte, 2)},
		{Format: Quant, Rows: 2, Cols: 32, Bits: 9, Group: 32, Raw: make([]byte, 72), Scales: make([]byte, 4)},
		{Format: Format(9), Rows: 1, Cols: 1},
	}
	for i, w := range bad {
		if w.Check() == nil {
			t.Errorf("case %d: Check accepted %+v", i, *w)
		}
	}
}

func TestF16ToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		got, want := f16ToFloat32(uint16(h)), formats.F16ToFloat32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("f16 %#04x: %v, want %v", h, got, want)
		}
	}
}

// BenchmarkMulStored measures one decoding step's product with a
// TinyLlama MLP weight (5632 × 2048) in each stored format; the bytes per
// second are those of the stored matrix.
func BenchmarkMulStored(b *testing.B) {
	savedVNNI := storedVNNI
	for _, tc := range []storedCase{
		{"bf16", 5632, 2048, BF16, quant.Scheme{}},
		{"f16", 5632, 2048, F16, quant.Scheme{}},
		{"int8-row", 5632, 2048, Quant, quant.Scheme{Bits: 8}},
		{"int4-g32", 5632, 2048, Quant, quant.Scheme{Bits: 4, GroupSize: 32}},
		{"int3-g32", 5632, 2048, Quant, quant.Scheme{Bits: 3, GroupSize: 32}},
	} {
		t := &testing.T{}
		w, _ := tc.build(t, rand.New(rand.NewPCG(1, 2)))
		for _, n := range []int{1, 4} {
			for _, threads := range []int{1, 2} {
				name := fmt.Sprintf("%s/n=%d/threads=%d", tc.name, n, threads)
				b.Run(name, func(b *testing.B) {
					x := make([]float32, n*tc.cols)
					for i := range x {
						x[i] = float32(i%7) - 3
					}
					y := make([]float32, n*tc.rows)
					b.SetBytes(w.Bytes())
					cpu0, ok := processCPUTime()
					for b.Loop() {
						Options{Threads: threads}.MulStored(n, x, tc.cols, w, y, tc.rows, 0)
					}
					if cpu1, ok1 := processCPUTime(); ok && ok1 && cpu1 > cpu0 {
						b.ReportMetric(float64(w.Bytes())*float64(b.N)/(cpu1-cpu0).Seconds()/1e6, "MB/cpu-s")
					}
				})
				if n == 1 && storedAVX512 {
					// The same product on the AVX2 kernels, for comparison.
					b.Run(name+"/avx2", func(b *testing.B) {
						storedAVX512, storedVNNI = false, false
						defer func() { storedAVX512, storedVNNI = true, savedVNNI }()
						x := make([]float32, tc.cols)
						y := make([]float32, tc.rows)
						b.SetBytes(w.Bytes())
						cpu0, ok := processCPUTime()
						for b.Loop() {
							Options{Threads: threads}.MulStored(1, x, tc.cols, w, y, tc.rows, 0)
						}
						if cpu1, ok1 := processCPUTime(); ok && ok1 && cpu1 > cpu0 {
							b.ReportMetric(float64(w.Bytes())*float64(b.N)/(cpu1-cpu0).Seconds()/1e6, "MB/cpu-s")
						}
					})
				}
			}
		}
	}
}
