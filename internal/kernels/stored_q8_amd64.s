//go:build amd64 && !purego

#include "textflag.h"

// func q4q8RowsAVX2(codes, scales *byte, xq *int8, xs *float32, rows, groups, chunks int, y *float32)
//
// For each of rows consecutive rows of 4-bit codes (groups groups of
// 32·chunks codes each, two codes per byte, low nibble first, one F16
// scale per group), writes
//
//	y[r] = Σ_g scale[r, g]·xs[g]·Σ_{j in g} (code[r, j]−8)·xq[j]
//
// where xq holds the int8 activations in 32-element chunk order (of every
// 32, the 16 of even index, then the 16 of odd index) and xs their scale
// per group. The inner sums are exact in int32; each group's sum is
// converted to float32 once.
TEXT ·q4q8RowsAVX2(SB), NOSPLIT, $0-64
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ rows+32(FP), R13
	MOVQ y+56(FP), DI
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x08080808, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x00010001, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
q8row:
	MOVQ xq+16(FP), R8
	MOVQ xs+24(FP), R9
	MOVQ groups+40(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
q8group:
	MOVQ chunks+48(FP), CX
	VPXOR Y4, Y4, Y4
q8chunk:
	VMOVDQU (SI), X10
	VPSRLW $4, X10, X11
	VINSERTI128 $1, X11, Y10, Y10
	VPAND Y14, Y10, Y10
	VPSUBB Y13, Y10, Y10
	VMOVDQU (R8), Y11
	VPSIGNB Y10, Y11, Y11
	VPSIGNB Y10, Y10, Y10
	VPMADDUBSW Y11, Y10, Y10
	VPMADDWD Y12, Y10, Y10
	VPADDD Y10, Y4, Y4
	ADDQ $16, SI
	ADDQ $32, R8
	DECQ CX
	JNZ  q8chunk
	VCVTDQ2PS Y4, Y4
	MOVWLZX (DX), AX
	VMOVD AX, X5
	VCVTPH2PS X5, X5
	VMULSS (R9), X5, X5
	VBROADCASTSS X5, Y5
	VFMADD231PS Y5, Y4, Y0
	ADDQ $2, DX
	ADDQ $4, R9
	DECQ BX
	JNZ  q8group
	VEXTRACTF128 $1, Y0, X5
	VADDPS X5, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R13
	JNZ  q8row
	VZEROUPPER
	RET
