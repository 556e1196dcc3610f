//go:build amd64 && !purego

#include "textflag.h"

// The dot products of one stored row with four float32 vectors x0…x3
// (MulStored): each 8- or 16-element chunk of the row is decoded once in
// registers and multiplied into four accumulators, one per vector.

// HSUM4 reduces the accumulators Y0…Y3 and stores them in out[0…3].
#define HSUM4 \
	VEXTRACTF128 $1, Y0, X5 \
	VADDPS X5, X0, X0 \
	VHADDPS X0, X0, X0 \
	VHADDPS X0, X0, X0 \
	VMOVSS X0, 0(DI) \
	VEXTRACTF128 $1, Y1, X5 \
	VADDPS X5, X1, X1 \
	VHADDPS X1, X1, X1 \
	VHADDPS X1, X1, X1 \
	VMOVSS X1, 4(DI) \
	VEXTRACTF128 $1, Y2, X5 \
	VADDPS X5, X2, X2 \
	VHADDPS X2, X2, X2 \
	VHADDPS X2, X2, X2 \
	VMOVSS X2, 8(DI) \
	VEXTRACTF128 $1, Y3, X5 \
	VADDPS X5, X3, X3 \
	VHADDPS X3, X3, X3 \
	VHADDPS X3, X3, X3 \
	VMOVSS X3, 12(DI)

// FMA4 adds the decoded chunk in Y4 times x0…x3 at OFF to Y0…Y3.
#define FMA4(OFF, W) \
	VFMADD231PS OFF(R8), W, Y0 \
	VFMADD231PS OFF(R9), W, Y1 \
	VFMADD231PS OFF(R10), W, Y2 \
	VFMADD231PS OFF(R11), W, Y3

#define LOADARGS \
	MOVQ w+0(FP), SI \
	MOVQ x0+8(FP), R8 \
	MOVQ x1+16(FP), R9 \
	MOVQ x2+24(FP), R10 \
	MOVQ x3+32(FP), R11 \
	MOVQ n+40(FP), CX \
	MOVQ out+48(FP), DI \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3

#define ADVANCE(XB) \
	ADDQ $XB, R8 \
	ADDQ $XB, R9 \
	ADDQ $XB, R10 \
	ADDQ $XB, R11

// HSUM1 reduces Y0 + Y1 + Y2 + Y3 and stores it in ret.
#define HSUM1(RET) \
	VADDPS Y1, Y0, Y0 \
	VADDPS Y3, Y2, Y2 \
	VADDPS Y2, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X5 \
	VADDPS X5, X0, X0 \
	VHADDPS X0, X0, X0 \
	VHADDPS X0, X0, X0 \
	VMOVSS X0, RET

#define LOADARGS1 \
	MOVQ w+0(FP), SI \
	MOVQ x+8(FP), R8 \
	MOVQ n+16(FP), CX \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3

// func dot4BF16AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)
//
// out[i] = Σ_{j<n} bf16(w[j])·xi[j]; n is a positive multiple of 8.
TEXT ·dot4BF16AVX2(SB), NOSPLIT, $0-56
	LOADARGS
bf16loop16:
	CMPQ CX, $16
	JLT  bf16loop8
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y6
	VPSLLD $16, Y4, Y4
	VPSLLD $16, Y6, Y6
	FMA4(0, Y4)
	FMA4(32, Y6)
	ADDQ $32, SI
	ADVANCE(64)
	SUBQ $16, CX
	JMP  bf16loop16
bf16loop8:
	TESTQ CX, CX
	JZ    bf16done
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	FMA4(0, Y4)
bf16done:
	HSUM4
	VZEROUPPER
	RET

// func dot4F16AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)
//
// out[i] = Σ_{j<n} f16(w[j])·xi[j]; n is a positive multiple of 8.
TEXT ·dot4F16AVX2(SB), NOSPLIT, $0-56
	LOADARGS
f16loop16:
	CMPQ CX, $16
	JLT  f16loop8
	VCVTPH2PS (SI), Y4
	VCVTPH2PS 16(SI), Y6
	FMA4(0, Y4)
	FMA4(32, Y6)
	ADDQ $32, SI
	ADVANCE(64)
	SUBQ $16, CX
	JMP  f16loop16
f16loop8:
	TESTQ CX, CX
	JZ    f16done
	VCVTPH2PS (SI), Y4
	FMA4(0, Y4)
f16done:
	HSUM4
	VZEROUPPER
	RET

// func dot4Q8AVX2(w *byte, x0, x1, x2, x3 *float32, n int, out *[4]float32)
//
// out[i] = Σ_{j<n} (codes[j]−128)·xi[j]; n is a positive multiple of 8.
TEXT ·dot4Q8AVX2(SB), NOSPLIT, $0-56
	LOADARGS
	MOVL $0x43000000, AX // 128.0
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
q8loop:
	VPMOVZXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VSUBPS Y15, Y4, Y4
	FMA4(0, Y4)
	ADDQ $8, SI
	ADVANCE(32)
	SUBQ $8, CX
	JNZ  q8loop
	HSUM4
	VZEROUPPER
	RET

// func dot4Q4AVX2(codes, scales *byte, x0, x1, x2, x3 *float32, groups, chunks int, out *[4]float32)
//
// out[i] = Σ_g scale[g]·Σ_{j in g} (code[j]−8)·xi[j] over groups of
// 16·chunks 4-bit codes (two per byte, low nibble first) with F16 scales.
// Each xi is given in chunk order (q4Order): of every 16 elements, the 8
// of even index, then the 8 of odd index, so that the low and the high
// nibbles of 8 bytes meet their elements without a shuffle.
TEXT ·dot4Q4AVX2(SB), NOSPLIT, $0-72
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ x2+32(FP), R10
	MOVQ x3+40(FP), R11
	MOVQ groups+48(FP), BX
	MOVQ chunks+56(FP), R12
	MOVQ out+64(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVL $0x41000000, AX // 8.0
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
	MOVL $0x0000000F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
q4group:
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ R12, CX
q4chunk:
	VPMOVZXBD (SI), Y10
	VPSRLD $4, Y10, Y11
	VPAND Y14, Y10, Y10
	VCVTDQ2PS Y10, Y10
	VCVTDQ2PS Y11, Y11
	VSUBPS Y15, Y10, Y10
	VSUBPS Y15, Y11, Y11
	VFMADD231PS (R8), Y10, Y4
	VFMADD231PS 32(R8), Y11, Y4
	VFMADD231PS (R9), Y10, Y5
	VFMADD231PS 32(R9), Y11, Y5
	VFMADD231PS (R10), Y10, Y6
	VFMADD231PS 32(R10), Y11, Y6
	VFMADD231PS (R11), Y10, Y7
	VFMADD231PS 32(R11), Y11, Y7
	ADDQ $8, SI
	ADVANCE(64)
	DECQ CX
	JNZ  q4chunk
	MOVWLZX (DX), AX
	VMOVD AX, X12
	VCVTPH2PS X12, X12
	VBROADCASTSS X12, Y12
	VFMADD231PS Y12, Y4, Y0
	VFMADD231PS Y12, Y5, Y1
	VFMADD231PS Y12, Y6, Y2
	VFMADD231PS Y12, Y7, Y3
	ADDQ $2, DX
	DECQ BX
	JNZ  q4group
	HSUM4
	VZEROUPPER
	RET

// func dot1BF16AVX2(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} bf16(w[j])·x[j]; n is a positive multiple of 8.
TEXT ·dot1BF16AVX2(SB), NOSPLIT, $0-28
	LOADARGS1
b1loop32:
	CMPQ CX, $32
	JLT  b1loop8
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y6
	VPMOVZXWD 32(SI), Y7
	VPMOVZXWD 48(SI), Y8
	VPSLLD $16, Y4, Y4
	VPSLLD $16, Y6, Y6
	VPSLLD $16, Y7, Y7
	VPSLLD $16, Y8, Y8
	VFMADD231PS (R8), Y4, Y0
	VFMADD231PS 32(R8), Y6, Y1
	VFMADD231PS 64(R8), Y7, Y2
	VFMADD231PS 96(R8), Y8, Y3
	ADDQ $64, SI
	ADDQ $128, R8
	SUBQ $32, CX
	JMP  b1loop32
b1loop8:
	TESTQ CX, CX
	JZ    b1done
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS (R8), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, R8
	SUBQ $8, CX
	JMP  b1loop8
b1done:
	HSUM1(ret+24(FP))
	VZEROUPPER
	RET

// func dot1F16AVX2(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} f16(w[j])·x[j]; n is a positive multiple of 8.
TEXT ·dot1F16AVX2(SB), NOSPLIT, $0-28
	LOADARGS1
h1loop32:
	CMPQ CX, $32
	JLT  h1loop8
	VCVTPH2PS (SI), Y4
	VCVTPH2PS 16(SI), Y6
	VCVTPH2PS 32(SI), Y7
	VCVTPH2PS 48(SI), Y8
	VFMADD231PS (R8), Y4, Y0
	VFMADD231PS 32(R8), Y6, Y1
	VFMADD231PS 64(R8), Y7, Y2
	VFMADD231PS 96(R8), Y8, Y3
	ADDQ $64, SI
	ADDQ $128, R8
	SUBQ $32, CX
	JMP  h1loop32
h1loop8:
	TESTQ CX, CX
	JZ    h1done
	VCVTPH2PS (SI), Y4
	VFMADD231PS (R8), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, R8
	SUBQ $8, CX
	JMP  h1loop8
h1done:
	HSUM1(ret+24(FP))
	VZEROUPPER
	RET

// func dot1Q8AVX2(w *byte, x *float32, n int) float32
//
// Returns Σ_{j<n} (w[j]−128)·x[j]; n is a positive multiple of 8.
TEXT ·dot1Q8AVX2(SB), NOSPLIT, $0-28
	LOADARGS1
	MOVL $0x43000000, AX // 128.0
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
q81loop16:
	CMPQ CX, $16
	JLT  q81loop8
	VPMOVZXBD (SI), Y4
	VPMOVZXBD 8(SI), Y6
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y6, Y6
	VSUBPS Y15, Y4, Y4
	VSUBPS Y15, Y6, Y6
	VFMADD231PS (R8), Y4, Y0
	VFMADD231PS 32(R8), Y6, Y1
	ADDQ $16, SI
	ADDQ $64, R8
	SUBQ $16, CX
	JMP  q81loop16
q81loop8:
	TESTQ CX, CX
	JZ    q81done
	VPMOVZXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VSUBPS Y15, Y4, Y4
	VFMADD231PS (R8), Y4, Y0
q81done:
	HSUM1(ret+24(FP))
	VZEROUPPER
	RET

// func dot1Q4AVX2(codes, scales *byte, x *float32, groups, chunks int) float32
//
// Returns Σ_g scale[g]·Σ_{j in g} (code[j]−8)·x[j] over groups of
// 16·chunks 4-bit codes with F16 scales, x in chunk order (q4Order).
TEXT ·dot1Q4AVX2(SB), NOSPLIT, $0-44
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ x+16(FP), R8
	MOVQ groups+24(FP), BX
	MOVQ chunks+32(FP), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVL $0x41000000, AX // 8.0
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
	MOVL $0x0000000F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
q41group:
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	MOVQ R12, CX
q41chunk:
	VPMOVZXBD (SI), Y10
	VPSRLD $4, Y10, Y11
	VPAND Y14, Y10, Y10
	VCVTDQ2PS Y10, Y10
	VCVTDQ2PS Y11, Y11
	VSUBPS Y15, Y10, Y10
	VSUBPS Y15, Y11, Y11
	VFMADD231PS (R8), Y10, Y4
	VFMADD231PS 32(R8), Y11, Y5
	ADDQ $8, SI
	ADDQ $64, R8
	DECQ CX
	JNZ  q41chunk
	MOVWLZX (DX), AX
	VMOVD AX, X12
	VCVTPH2PS X12, X12
	VBROADCASTSS X12, Y12
	VADDPS Y5, Y4, Y4
	VFMADD231PS Y12, Y4, Y0
	ADDQ $2, DX
	DECQ BX
	JNZ  q41group
	HSUM1(ret+40(FP))
	VZEROUPPER
	RET
