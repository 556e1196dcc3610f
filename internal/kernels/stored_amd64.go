//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// storedAsm selects the assembly dot products of stored matrices: AVX2
// with FMA and F16C. Tests clear it to exercise the portable path.
var storedAsm = hasAVX2 && cpu.X86.HasAVX

// storedAVX512 selects, with storedAsm, the AVX-512 one-row products (a
// decoding step of one sequence). Tests clear it to exercise the AVX2 ones.
var storedAVX512 = storedAsm && hasAVX512 && cpu.X86.HasAVX512BW

// q4Width returns the chunk width of the 4-bit kernels for products of n
// rows with groups of g codes: 32 for the AVX-512 one-row kernel, else 16.
func q4Width(n, g int) int {
	if storedAVX512 && n == 1 && g%32 == 0 {
		return 32
	}
	return 16
}

// halfDots computes the dot products of the BF16 or F16 row raw with the
// first m of the four vectors xs over the largest multiple of 8 elements,
// writes them to out and returns that count; 0 without the assembly.
func halfDots(f Format, raw []byte, m int, xs *[4][]float32, out *[4]float32) int {
	n := len(raw) / 2 &^ 7
	if !storedAsm || n == 0 {
		*out = [4]float32{}
		return 0
	}
	_ = raw[2*n-1]
	for i := range xs {
		_ = xs[i][n-1]
	}
	if m == 1 && storedAVX512 && n >= 16 {
		n &^= 15
		if f == BF16 {
			out[0] = dot1BF16AVX512(&raw[0], &xs[0][0], n)
		} else {
			out[0] = dot1F16AVX512(&raw[0], &xs[0][0], n)
		}
		return n
	}
	if m == 1 {
		if f == BF16 {
			out[0] = dot1BF16AVX2(&raw[0], &xs[0][0], n)
		} else {
			out[0] = dot1F16AVX2(&raw[0], &xs[0][0], n)
		}
		return n
	}
	if f == BF16 {
		dot4BF16AVX2(&raw[0], &xs[0][0], &xs[1][0], &xs[2][0], &xs[3][0], n, out)
	} else {
		dot4F16AVX2(&raw[0], &xs[0][0], &xs[1][0], &xs[2][0], &xs[3][0], n, out)
	}
	return n
}

// codeDots writes Σ code(first+t)·xs[i][off+t] over t < n for i < rows;
// 8-bit codes go through the assembly, other widths through the portable
// loop.
func codeDots(w *Stored, first, n, rows int, xs *[4][]float32, off int, seg *[4]float32) {
	m := n &^ 7
	if !storedAsm || w.Bits != 8 || m == 0 {
		codeDotsGeneric(w, first, n, rows, xs, off, seg)
		return
	}
	_ = w.Raw[first+m-1]
	for i := range xs {
		_ = xs[i][off+m-1]
	}
	if rows == 1 && storedAVX512 && m >= 16 {
		m &^= 15
		seg[0] = dot1Q8AVX512(&w.Raw[first], &xs[0][off], m)
	} else if rows == 1 {
		seg[0] = dot1Q8AVX2(&w.Raw[first], &xs[0][off], m)
	} else {
		dot4Q8AVX2(&w.Raw[first], &xs[0][off], &xs[1][off], &xs[2][off], &xs[3][off], m, seg)
	}
	if m < n {
		var t [4]float32
		codeDotsGeneric(w, first+m, n-m, rows, xs, off+m, &t)
		for i := range seg {
			seg[i] += t[i]
		}
	}
}

// q4GroupDots computes the dot products of a row of 4-bit codes (whole
// groups of g elements, g a multiple of width) and its scales with the
// first m of the four vectors xs, in chunk order of width (q4Width), into
// out, and reports whether the assembly ran.
func q4GroupDots(codes, scales []byte, m int, xs *[4][]float32, g, width int, out *[4]float32) bool {
	if !storedAsm || len(codes) == 0 {
		return false
	}
	n := 2 * len(codes)
	groups := n / g
	_ = scales[2*groups-1]
	for i := range xs {
		_ = xs[i][n-1]
	}
	if width == 32 {
		out[0] = dot1Q4AVX512(&codes[0], &scales[0], &xs[0][0], groups, g/32)
		return true
	}
	if m == 1 {
		out[0] = dot1Q4AVX2(&codes[0], &scales[0], &xs[0][0], groups, g/16)
		return true
	}
	dot4Q4AVX2(&codes[0], &scales[0], &xs[0][0], &xs[1][0], &xs[2][0], &xs[3][0], groups, g/16, out)
	return true
}

//go:noescape
func dot4BF16AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)

//go:noescape
func dot4F16AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)

//go:noescape
func dot4Q8AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)

//go:noescape
func dot4Q4AVX2(codes, scales *byte, x0, x1, x2, x3 *float32, groups, chunks int, out *[4]float32)

//go:noescape
func dot1BF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dot1F16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dot1Q8AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dot1Q4AVX2(codes, scales *byte, x *float32, groups, chunks int) float32

//go:noescape
func dot1BF16AVX512(w *byte, x *float32, n int) float32

//go:noescape
func dot1F16AVX512(w *byte, x *float32, n int) float32

//go:noescape
func dot1Q8AVX512(w *byte, x *float32, n int) float32

//go:noescape
func dot1Q4AVX512(codes, scales *byte, x *float32, groups, chunks int) float32

// storedVNNI selects, with storedAsm, the VPDPBUSD integer kernel
// (AVX-512 VNNI on 256-bit registers). Tests clear it to exercise the
// AVX2 one.
var storedVNNI = storedAsm && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL

// q4q8RowsAsm runs the integer kernel on checked slices.
func q4q8RowsAsm(codes, scales []byte, xq []int8, xs []float32, xc []int32, rows, groups, chunks int, y []float32) {
	q := (*int8)(unsafe.Pointer(&xq[0]))
	if storedVNNI {
		q4q8RowsVNNI(&codes[0], &scales[0], q, &xs[0], &xc[0], rows, groups, chunks, &y[0])
		return
	}
	q4q8RowsAVX2(&codes[0], &scales[0], q, &xs[0], &xc[0], rows, groups, chunks, &y[0])
}

//go:noescape
func q4q8RowsAVX2(codes, scales *byte, xq *int8, xs *float32, xc *int32, rows, groups, chunks int, y *float32)

//go:noescape
func q4q8RowsVNNI(codes, scales *byte, xq *int8, xs *float32, xc *int32, rows, groups, chunks int, y *float32)

// q4q8BlocksAsm runs the block-order kernel on checked slices: for 64
// columns eight rows at a time, then row by row.
func q4q8BlocksAsm(codes, scales []byte, xq []int8, xs4 []float32, xc4 []int32, rows, groups int, y []float32) {
	if groups == 2 && rows >= 8 {
		r8 := rows / 8
		q4q8Cols64VNNI512(&codes[0], &scales[0], (*int8)(unsafe.Pointer(&xq[0])), &xs4[0], &xc4[0], r8, &y[0])
		done := 8 * r8
		if done == rows {
			return
		}
		codes, scales, y, rows = codes[done*32:], scales[done*4:], y[done:], rows-done
	}
	q4q8BlocksVNNI512(&codes[0], &scales[0], (*int8)(unsafe.Pointer(&xq[0])), &xs4[0], &xc4[0], rows, groups, &y[0])
}

// quantizeQ8Group32 is quantizeQ8Group, in AVX-512 where the CPU has it.
func quantizeQ8Group32(seg []float32, even, odd []int8) (float32, int32) {
	if !storedAVX512 {
		return quantizeQ8Group(seg, even, odd)
	}
	_, _, _ = seg[31], even[15], odd[15]
	return q8Group32AVX512(&seg[0], (*int8)(unsafe.Pointer(&even[0])), (*int8)(unsafe.Pointer(&odd[0])))
}

//go:noescape
func q4q8BlocksVNNI512(codes, scales *byte, xq *int8, xs4 *float32, xc4 *int32, rows, groups int, y *float32)

//go:noescape
func q4q8Cols64VNNI512(codes, scales *byte, xq *int8, xs4 *float32, xc4 *int32, rows8 int, y *float32)

//go:noescape
func q8Group32AVX512(x *float32, even, odd *int8) (d float32, sum int32)

// bf16PairRows checks the slices and runs the pair-order BF16 kernel on
// rows rows of stride bytes.
func bf16PairRows(raw []byte, stride int, xp []float32, n, rows int, y []float32) {
	_ = raw[(rows-1)*stride+2*n-1]
	_ = xp[n-1]
	_ = y[rows-1]
	rowsBF16PairsAVX512(&raw[0], stride, &xp[0], n, rows, &y[0], bf16PairsPrefetch)
}

//go:noescape
func rowsBF16PairsAVX512(w *byte, stride int, x *float32, n, rows int, y *float32, pf int)
