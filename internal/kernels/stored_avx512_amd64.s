//go:build amd64 && !purego

#include "textflag.h"

// The one-row dot products of MulStored on AVX-512 (16 lanes): a stored
// row, decoded in registers, against one float32 vector.

// ZSUM4 reduces Z0 + Z1 + Z2 + Z3 and stores it in RET.
#define ZSUM4(RET) \
	VADDPS Z1, Z0, Z0 \
	VADDPS Z3, Z2, Z2 \
	VADDPS Z2, Z0, Z0 \
	VEXTRACTF64X4 $1, Z0, Y1 \
	VADDPS Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS X1, X0, X0 \
	VHADDPS X0, X0, X0 \
	VHADDPS X0, X0, X0 \
	VMOVSS X0, RET

#define ZARGS \
	MOVQ w+0(FP), SI \
	MOVQ x+8(FP), R8 \
	MOVQ n+16(FP), CX \
	VXORPS Z0, Z0, Z0 \
	VXORPS Z1, Z1, Z1 \
	VXORPS Z2, Z2, Z2 \
	VXORPS Z3, Z3, Z3

// func dot1BF16AVX512(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} bf16(w[j])·x[j]; n is a positive multiple of 16.
TEXT ·dot1BF16AVX512(SB), NOSPLIT, $0-28
	ZARGS
zb64:
	CMPQ CX, $64
	JLT  zb16
	VPMOVZXWD (SI), Z4
	VPMOVZXWD 32(SI), Z5
	VPMOVZXWD 64(SI), Z6
	VPMOVZXWD 96(SI), Z7
	VPSLLD $16, Z4, Z4
	VPSLLD $16, Z5, Z5
	VPSLLD $16, Z6, Z6
	VPSLLD $16, Z7, Z7
	VFMADD231PS (R8), Z4, Z0
	VFMADD231PS 64(R8), Z5, Z1
	VFMADD231PS 128(R8), Z6, Z2
	VFMADD231PS 192(R8), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, R8
	SUBQ $64, CX
	JMP  zb64
zb16:
	TESTQ CX, CX
	JZ    zbdone
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VFMADD231PS (R8), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, R8
	SUBQ $16, CX
	JMP  zb16
zbdone:
	ZSUM4(ret+24(FP))
	VZEROUPPER
	RET

// func dot1F16AVX512(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} f16(w[j])·x[j]; n is a positive multiple of 16.
TEXT ·dot1F16AVX512(SB), NOSPLIT, $0-28
	ZARGS
zh64:
	CMPQ CX, $64
	JLT  zh16
	VCVTPH2PS (SI), Z4
	VCVTPH2PS 32(SI), Z5
	VCVTPH2PS 64(SI), Z6
	VCVTPH2PS 96(SI), Z7
	VFMADD231PS (R8), Z4, Z0
	VFMADD231PS 64(R8), Z5, Z1
	VFMADD231PS 128(R8), Z6, Z2
	VFMADD231PS 192(R8), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, R8
	SUBQ $64, CX
	JMP  zh64
zh16:
	TESTQ CX, CX
	JZ    zhdone
	VCVTPH2PS (SI), Z4
	VFMADD231PS (R8), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, R8
	SUBQ $16, CX
	JMP  zh16
zhdone:
	ZSUM4(ret+24(FP))
	VZEROUPPER
	RET

// func dot1Q8AVX512(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} (w[j]−128)·x[j]; n is a positive multiple of 16.
TEXT ·dot1Q8AVX512(SB), NOSPLIT, $0-28
	ZARGS
	MOVL $0x43000000, AX // 128.0
	VMOVD AX, X15
	VBROADCASTSS X15, Z15
zq8:
	VPMOVZXBD (SI), Z4
	VCVTDQ2PS Z4, Z4
	VSUBPS Z15, Z4, Z4
	VFMADD231PS (R8), Z4, Z0
	ADDQ $16, SI
	ADDQ $64, R8
	SUBQ $16, CX
	JNZ  zq8
	ZSUM4(ret+24(FP))
	VZEROUPPER
	RET

// func dot1Q4AVX512(codes, scales *byte, x *float32, groups, chunks int) float32
//
// Returns Σ_g scale[g]·Σ_{j in g} (code[j]−8)·x[j] over groups of
// 32·chunks 4-bit codes with F16 scales, x in 32-element chunk order
// (q4Order): of every 32 elements the 16 of even index, then the 16 of odd
// index.
TEXT ·dot1Q4AVX512(SB), NOSPLIT, $0-44
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ x+16(FP), R8
	MOVQ groups+24(FP), BX
	MOVQ chunks+32(FP), R12
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVL $0x41000000, AX // 8.0
	VMOVD AX, X15
	VBROADCASTSS X15, Z15
	MOVL $0x0000000F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Z14
zq4group:
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	MOVQ R12, CX
zq4chunk:
	VPMOVZXBD (SI), Z10
	VPSRLD $4, Z10, Z11
	VPANDD Z14, Z10, Z10
	VCVTDQ2PS Z10, Z10
	VCVTDQ2PS Z11, Z11
	VSUBPS Z15, Z10, Z10
	VSUBPS Z15, Z11, Z11
	VFMADD231PS (R8), Z10, Z4
	VFMADD231PS 64(R8), Z11, Z5
	ADDQ $16, SI
	ADDQ $128, R8
	DECQ CX
	JNZ  zq4chunk
	MOVWLZX (DX), AX
	VMOVD AX, X12
	VCVTPH2PS X12, X12
	VBROADCASTSS X12, Z12
	VADDPS Z5, Z4, Z4
	VFMADD231PS Z12, Z4, Z0
	ADDQ $2, DX
	DECQ BX
	JNZ  zq4group
	ZSUM4(ret+40(FP))
	VZEROUPPER
	RET
