//go:build amd64 && !purego

#include "textflag.h"

// The one-row product of a BF16 matrix on AVX-512 with the vector in
// pair order (stored_bf16.go): a 512-bit load of 32 BF16 elements is 16
// pairs; the even element of each pair becomes a float32 by one left shift
// of its 32-bit lane, the odd one by masking the lane's low half, so that
// each 32 elements cost one load, one shift, one mask and two FMAs, with
// no widening shuffle. The rows ahead are prefetched by pf bytes.

// func rowsBF16PairsAVX512(w *byte, stride int, x *float32, n, rows int, y *float32, pf int)
//
// y[r] = Σ_{j<n} bf16(w[r·stride + 2j])·x'[j] for r < rows, where x' is x
// in pair order and n is a positive multiple of 32.
TEXT ·rowsBF16PairsAVX512(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ y+40(FP), DI
	MOVQ rows+32(FP), R13
	MOVQ pf+48(FP), R11
	MOVL $0xFFFF0000, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Z15
pbrow:
	MOVQ SI, R12
	MOVQ x+16(FP), R8
	MOVQ n+24(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	LEAQ (SI)(R11*1), R10
pb64:
	CMPQ CX, $64
	JLT  pb32
	VMOVDQU64 (SI), Z4
	VMOVDQU64 64(SI), Z6
	PREFETCHT0 (R10)
	PREFETCHT0 64(R10)
	VPSLLD $16, Z4, Z5
	VPANDD Z15, Z4, Z4
	VPSLLD $16, Z6, Z7
	VPANDD Z15, Z6, Z6
	VFMADD231PS (R8), Z5, Z0
	VFMADD231PS 64(R8), Z4, Z1
	VFMADD231PS 128(R8), Z7, Z2
	VFMADD231PS 192(R8), Z6, Z3
	ADDQ $128, SI
	ADDQ $128, R10
	ADDQ $256, R8
	SUBQ $64, CX
	JMP  pb64
pb32:
	TESTQ CX, CX
	JZ    pbend
	VMOVDQU64 (SI), Z4
	VPSLLD $16, Z4, Z5
	VPANDD Z15, Z4, Z4
	VFMADD231PS (R8), Z5, Z0
	VFMADD231PS 64(R8), Z4, Z1
pbend:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	MOVQ stride+8(FP), AX
	LEAQ (R12)(AX*1), SI
	DECQ R13
	JNZ  pbrow
	VZEROUPPER
	RET
