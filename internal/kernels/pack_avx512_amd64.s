//go:build amd64 && !purego

#include "textflag.h"

// iota16 holds the int32 lane numbers 0..15.
DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// func packBT32AVX512(dst, b *float32, ldb, kb, cols int)
//
// Packs one 32-column panel of a B stored transposed: for p < kb and j < 32,
// dst[p*32 + j] = b[j*ldb + p] when j < cols, else 0. Each row of the panel
// is two 16-lane gathers. Requires 1 ≤ cols ≤ 32, 31·ldb < 2³¹, kb ≥ 1,
// AVX512F and BMI2.
TEXT ·packBT32AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ ldb+16(FP), AX
	MOVQ kb+24(FP), CX
	MOVQ cols+32(FP), DX
	VPBROADCASTD AX, Z29
	VMOVDQU32 iota16<>(SB), Z30
	VPMULLD Z29, Z30, Z30     // j*ldb for j < 16
	SHLL $4, AX
	VPBROADCASTD AX, Z29
	VPADDD Z29, Z30, Z31      // j*ldb for 16 ≤ j < 32
	MOVL $-1, R8
	BZHIL DX, R8, R8          // (1<<cols)-1, all ones for cols ≥ 32
	KMOVW R8, K3
	SHRL $16, R8
	KMOVW R8, K4

loop:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	KMOVW K3, K1
	KMOVW K4, K2
	VGATHERDPS (SI)(Z30*4), K1, Z0
	VGATHERDPS (SI)(Z31*4), K2, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $4, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  loop
	VZEROUPPER
	RET
