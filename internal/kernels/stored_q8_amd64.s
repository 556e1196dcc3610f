//go:build amd64 && !purego

#include "textflag.h"

// The integer one-row products of 4-bit matrices (stored_q8.go): for each
// of rows consecutive rows of 4-bit codes (groups groups of 32·chunks
// codes each, two codes per byte, low nibble first, one F16 scale per
// group),
//
//	y[r] = Σ_g scale[r, g]·xs[g]·(Σ_{j in g} code[r, j]·xq[j] + xc[g])
//
// where xq holds the int8 activations in 32-element chunk order (of every
// 32, the 16 of even index, then the 16 of odd index), xs their scale per
// group and xc = −8·Σ_{j in g} xq[j] the offset of the codes. Each group's
// sum is exact in int32 (it starts from xc[g] in lane 0) and is converted
// to float32 once; groups alternate between two accumulators.

// Q8SETUP loads the arguments and the constants.
#define Q8SETUP \
	MOVQ codes+0(FP), SI \
	MOVQ scales+8(FP), DX \
	MOVQ rows+40(FP), R13 \
	MOVQ y+64(FP), DI \
	MOVL $0x0F0F0F0F, AX \
	VMOVD AX, X14 \
	VPBROADCASTD X14, Y14 \
	MOVL $0x00010001, AX \
	VMOVD AX, X12 \
	VPBROADCASTD X12, Y12

// Q8ROWSTART points at the activations and clears the accumulators.
#define Q8ROWSTART \
	MOVQ xq+16(FP), R8 \
	MOVQ xs+24(FP), R9 \
	MOVQ xc+32(FP), R10 \
	MOVQ groups+48(FP), BX \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1

// UNPACK decodes the 16 code bytes at SI into 32 unsigned bytes in Y10,
// in chunk order.
#define UNPACK \
	VMOVDQU (SI), X10 \
	VPSRLW $4, X10, X11 \
	VINSERTI128 $1, X11, Y10, Y10 \
	VPAND Y14, Y10, Y10

// GROUPEND converts the group's int32 sum in Y4, scales it by
// scale·xs and adds it to ACC; it advances to the next group.
#define GROUPEND(ACC) \
	VCVTDQ2PS Y4, Y4 \
	MOVWLZX (DX), AX \
	VMOVD AX, X5 \
	VCVTPH2PS X5, X5 \
	VMULSS (R9), X5, X5 \
	VBROADCASTSS X5, Y5 \
	VFMADD231PS Y5, Y4, ACC \
	ADDQ $2, DX \
	ADDQ $4, R9 \
	ADDQ $4, R10

// ROWEND stores Y0 + Y1 in y[r] and advances to the next row.
#define ROWEND \
	VADDPS Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X5 \
	VADDPS X5, X0, X0 \
	VHADDPS X0, X0, X0 \
	VHADDPS X0, X0, X0 \
	VMOVSS X0, (DI) \
	ADDQ $4, DI

// func q4q8RowsAVX2(codes, scales *byte, xq *int8, xs *float32, xc *int32, rows, groups, chunks int, y *float32)
//
// AVX2: VPMADDUBSW (codes ≤ 15 times |xq| ≤ 127: no pair sum saturates)
// and VPMADDWD.
TEXT ·q4q8RowsAVX2(SB), NOSPLIT, $0-72
	Q8SETUP
a8row:
	Q8ROWSTART
a8group:
	MOVQ chunks+56(FP), CX
	VMOVD (R10), X4
a8chunk:
	UNPACK
	VPMADDUBSW (R8), Y10, Y10
	VPMADDWD Y12, Y10, Y10
	VPADDD Y10, Y4, Y4
	ADDQ $16, SI
	ADDQ $32, R8
	DECQ CX
	JNZ  a8chunk
	GROUPEND(Y0)
	DECQ BX
	JZ   a8rowend
	MOVQ chunks+56(FP), CX
	VMOVD (R10), X4
a8chunk2:
	UNPACK
	VPMADDUBSW (R8), Y10, Y10
	VPMADDWD Y12, Y10, Y10
	VPADDD Y10, Y4, Y4
	ADDQ $16, SI
	ADDQ $32, R8
	DECQ CX
	JNZ  a8chunk2
	GROUPEND(Y1)
	DECQ BX
	JNZ  a8group
a8rowend:
	ROWEND
	DECQ R13
	JNZ  a8row
	VZEROUPPER
	RET

// func q4q8RowsVNNI(codes, scales *byte, xq *int8, xs *float32, xc *int32, rows, groups, chunks int, y *float32)
//
// AVX-512 VNNI on 256-bit registers: VPDPBUSD.
TEXT ·q4q8RowsVNNI(SB), NOSPLIT, $0-72
	Q8SETUP
v8row:
	Q8ROWSTART
v8group:
	MOVQ chunks+56(FP), CX
	VMOVD (R10), X4
v8chunk:
	UNPACK
	VPDPBUSD (R8), Y10, Y4
	ADDQ $16, SI
	ADDQ $32, R8
	DECQ CX
	JNZ  v8chunk
	GROUPEND(Y0)
	DECQ BX
	JZ   v8rowend
	MOVQ chunks+56(FP), CX
	VMOVD (R10), X4
v8chunk2:
	UNPACK
	VPDPBUSD (R8), Y10, Y4
	ADDQ $16, SI
	ADDQ $32, R8
	DECQ CX
	JNZ  v8chunk2
	GROUPEND(Y1)
	DECQ BX
	JNZ  v8group
v8rowend:
	ROWEND
	DECQ R13
	JNZ  v8row
	VZEROUPPER
	RET
