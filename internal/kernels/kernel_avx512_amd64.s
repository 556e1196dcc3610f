//go:build amd64 && !purego

#include "textflag.h"

// The kernels below compute C = alpha*Ã·B̃ + beta*C for the first n columns
// of m rows of C, 12 rows (one register tile) at a time, where
// Ã(i,p) = a[i*rsa + p*csa] and B̃(p,j) = b[p*ldb + j]. C is not read when
// beta == 0. Register use:
//
//	R14, R15    A and C at the first row of the current tile
//	R13         rows of C left to store
//	AX, DI      A at the current column for rows 0-7 and 8-11
//	DX, R8-R10  1, 3, 5 and 7 times the A row stride in bytes
//	SI          A column stride in bytes
//	BX, R11-R12 B at the current row; 1 and 3 times its stride in bytes
//	CX          remaining k
//	Z24-Z25     the current row of B
//	Z26-Z29     broadcast elements of A
//	Z30, Z31    alpha and beta
//	K1, K2      column masks for the first and second 16 columns
//
// They require k ≥ 1, m ≥ 1, 1 ≤ n ≤ 16·(number of B vectors), all
// 12·⌈m/12⌉ rows of Ã readable, AVX512F and BMI2.

// One k step of the 12×32 tile: two B vectors, twelve A broadcasts, 24 FMAs;
// then A advances by one column.
#define KSTEP32(b0, b1) \
	VMOVUPS b0, Z24; \
	VMOVUPS b1, Z25; \
	VBROADCASTSS (AX), Z26; \
	VFMADD231PS Z24, Z26, Z0; \
	VFMADD231PS Z25, Z26, Z1; \
	VBROADCASTSS (AX)(DX*1), Z27; \
	VFMADD231PS Z24, Z27, Z2; \
	VFMADD231PS Z25, Z27, Z3; \
	VBROADCASTSS (AX)(DX*2), Z28; \
	VFMADD231PS Z24, Z28, Z4; \
	VFMADD231PS Z25, Z28, Z5; \
	VBROADCASTSS (AX)(R8*1), Z29; \
	VFMADD231PS Z24, Z29, Z6; \
	VFMADD231PS Z25, Z29, Z7; \
	VBROADCASTSS (AX)(DX*4), Z26; \
	VFMADD231PS Z24, Z26, Z8; \
	VFMADD231PS Z25, Z26, Z9; \
	VBROADCASTSS (AX)(R9*1), Z27; \
	VFMADD231PS Z24, Z27, Z10; \
	VFMADD231PS Z25, Z27, Z11; \
	VBROADCASTSS (AX)(R8*2), Z28; \
	VFMADD231PS Z24, Z28, Z12; \
	VFMADD231PS Z25, Z28, Z13; \
	VBROADCASTSS (AX)(R10*1), Z29; \
	VFMADD231PS Z24, Z29, Z14; \
	VFMADD231PS Z25, Z29, Z15; \
	VBROADCASTSS (DI), Z26; \
	VFMADD231PS Z24, Z26, Z16; \
	VFMADD231PS Z25, Z26, Z17; \
	VBROADCASTSS (DI)(DX*1), Z27; \
	VFMADD231PS Z24, Z27, Z18; \
	VFMADD231PS Z25, Z27, Z19; \
	VBROADCASTSS (DI)(DX*2), Z28; \
	VFMADD231PS Z24, Z28, Z20; \
	VFMADD231PS Z25, Z28, Z21; \
	VBROADCASTSS (DI)(R8*1), Z29; \
	VFMADD231PS Z24, Z29, Z22; \
	VFMADD231PS Z25, Z29, Z23; \
	ADDQ SI, AX; \
	ADDQ SI, DI

// One k step of the 12×16 tile: one B vector, twelve A broadcasts, 12 FMAs.
#define KSTEP16(b0, b1) \
	VMOVUPS b0, Z24; \
	VBROADCASTSS (AX), Z26; \
	VFMADD231PS Z24, Z26, Z0; \
	VBROADCASTSS (AX)(DX*1), Z27; \
	VFMADD231PS Z24, Z27, Z1; \
	VBROADCASTSS (AX)(DX*2), Z28; \
	VFMADD231PS Z24, Z28, Z2; \
	VBROADCASTSS (AX)(R8*1), Z29; \
	VFMADD231PS Z24, Z29, Z3; \
	VBROADCASTSS (AX)(DX*4), Z26; \
	VFMADD231PS Z24, Z26, Z4; \
	VBROADCASTSS (AX)(R9*1), Z27; \
	VFMADD231PS Z24, Z27, Z5; \
	VBROADCASTSS (AX)(R8*2), Z28; \
	VFMADD231PS Z24, Z28, Z6; \
	VBROADCASTSS (AX)(R10*1), Z29; \
	VFMADD231PS Z24, Z29, Z7; \
	VBROADCASTSS (DI), Z26; \
	VFMADD231PS Z24, Z26, Z8; \
	VBROADCASTSS (DI)(DX*1), Z27; \
	VFMADD231PS Z24, Z27, Z9; \
	VBROADCASTSS (DI)(DX*2), Z28; \
	VFMADD231PS Z24, Z28, Z10; \
	VBROADCASTSS (DI)(R8*1), Z29; \
	VFMADD231PS Z24, Z29, Z11; \
	ADDQ SI, AX; \
	ADDQ SI, DI

// Prefetch one row of the C tile and advance to the next.
#define PREFETCHROW2 \
	PREFETCHT0 (BX); \
	PREFETCHT0 64(BX); \
	ADDQ R12, BX

#define PREFETCHROW1 \
	PREFETCHT0 (BX); \
	ADDQ R12, BX

// Store one row of accumulators: C = alpha*acc, columns masked by K1 (K2),
// then advance C by one row and decrement the row count in R13 (the caller
// branches on ZF).
#define STORE2(lo, hi) \
	VMULPS Z30, lo, lo; \
	VMULPS Z30, hi, hi; \
	VMOVUPS lo, K1, (R11); \
	VMOVUPS hi, K2, 64(R11); \
	ADDQ R12, R11; \
	DECQ R13

#define STORE1(lo) \
	VMULPS Z30, lo, lo; \
	VMOVUPS lo, K1, (R11); \
	ADDQ R12, R11; \
	DECQ R13

// As STORE2/STORE1 with C = alpha*acc + beta*C.
#define STOREBETA2(lo, hi) \
	VMOVUPS.Z (R11), K1, Z24; \
	VMOVUPS.Z 64(R11), K2, Z25; \
	VMULPS Z30, lo, lo; \
	VMULPS Z30, hi, hi; \
	VFMADD231PS Z24, Z31, lo; \
	VFMADD231PS Z25, Z31, hi; \
	VMOVUPS lo, K1, (R11); \
	VMOVUPS hi, K2, 64(R11); \
	ADDQ R12, R11; \
	DECQ R13

#define STOREBETA1(lo) \
	VMOVUPS.Z (R11), K1, Z24; \
	VMULPS Z30, lo, lo; \
	VFMADD231PS Z24, Z31, lo; \
	VMOVUPS lo, K1, (R11); \
	ADDQ R12, R11; \
	DECQ R13

// func sgemmKernel12x32(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m, n int, alpha, beta float32)
TEXT ·sgemmKernel12x32(SB), NOSPLIT, $0-88
	MOVQ a+8(FP), R14
	MOVQ rsa+16(FP), DX
	MOVQ csa+24(FP), SI
	MOVQ c+48(FP), R15
	MOVQ m+64(FP), R13
	SHLQ $2, DX
	SHLQ $2, SI
	LEAQ (DX)(DX*2), R8    // 3*rsa
	LEAQ (DX)(DX*4), R9    // 5*rsa
	LEAQ (R8)(DX*4), R10   // 7*rsa
	MOVQ n+72(FP), CX
	MOVL $-1, R11
	BZHIL CX, R11, R11     // (1<<n)-1, all ones for n ≥ 32
	KMOVW R11, K1
	SHRL $16, R11
	KMOVW R11, K2
	VBROADCASTSS alpha+80(FP), Z30
	VBROADCASTSS beta+84(FP), Z31

tile12x32:
	// Prefetch the C tile, which is accessed after the k loop.
	MOVQ ldc+56(FP), R12
	SHLQ $2, R12
	MOVQ R15, BX
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	PREFETCHROW2
	MOVQ R14, AX
	LEAQ (AX)(DX*8), DI    // row 8
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R12 // 3*ldb
	MOVQ k+0(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

	CMPQ CX, $4
	JLT  tail12x32

loop12x32:
	KSTEP32((BX), 64(BX))
	KSTEP32((BX)(R11*1), 64(BX)(R11*1))
	KSTEP32((BX)(R11*2), 64(BX)(R11*2))
	KSTEP32((BX)(R12*1), 64(BX)(R12*1))
	LEAQ (BX)(R11*4), BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop12x32
	TESTQ CX, CX
	JZ   store12x32

tail12x32:
	KSTEP32((BX), 64(BX))
	ADDQ R11, BX
	DECQ CX
	JNZ  tail12x32

store12x32:
	MOVQ R15, R11
	MOVQ ldc+56(FP), R12
	SHLQ $2, R12
	MOVL beta+84(FP), CX
	TESTL $0x7fffffff, CX  // beta == ±0: overwrite C
	JNZ  beta12x32
	STORE2(Z0, Z1)
	JZ   done12x32
	STORE2(Z2, Z3)
	JZ   done12x32
	STORE2(Z4, Z5)
	JZ   done12x32
	STORE2(Z6, Z7)
	JZ   done12x32
	STORE2(Z8, Z9)
	JZ   done12x32
	STORE2(Z10, Z11)
	JZ   done12x32
	STORE2(Z12, Z13)
	JZ   done12x32
	STORE2(Z14, Z15)
	JZ   done12x32
	STORE2(Z16, Z17)
	JZ   done12x32
	STORE2(Z18, Z19)
	JZ   done12x32
	STORE2(Z20, Z21)
	JZ   done12x32
	STORE2(Z22, Z23)
	JZ   done12x32
	JMP  next12x32

beta12x32:
	STOREBETA2(Z0, Z1)
	JZ   done12x32
	STOREBETA2(Z2, Z3)
	JZ   done12x32
	STOREBETA2(Z4, Z5)
	JZ   done12x32
	STOREBETA2(Z6, Z7)
	JZ   done12x32
	STOREBETA2(Z8, Z9)
	JZ   done12x32
	STOREBETA2(Z10, Z11)
	JZ   done12x32
	STOREBETA2(Z12, Z13)
	JZ   done12x32
	STOREBETA2(Z14, Z15)
	JZ   done12x32
	STOREBETA2(Z16, Z17)
	JZ   done12x32
	STOREBETA2(Z18, Z19)
	JZ   done12x32
	STOREBETA2(Z20, Z21)
	JZ   done12x32
	STOREBETA2(Z22, Z23)
	JZ   done12x32

next12x32:
	// Advance A and C by 12 rows; C already points there.
	LEAQ (R14)(DX*8), R14
	LEAQ (R14)(DX*4), R14
	MOVQ R11, R15
	JMP  tile12x32

done12x32:
	VZEROUPPER
	RET

// func sgemmKernel12x16(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m, n int, alpha, beta float32)
TEXT ·sgemmKernel12x16(SB), NOSPLIT, $0-88
	MOVQ a+8(FP), R14
	MOVQ rsa+16(FP), DX
	MOVQ csa+24(FP), SI
	MOVQ c+48(FP), R15
	MOVQ m+64(FP), R13
	SHLQ $2, DX
	SHLQ $2, SI
	LEAQ (DX)(DX*2), R8    // 3*rsa
	LEAQ (DX)(DX*4), R9    // 5*rsa
	LEAQ (R8)(DX*4), R10   // 7*rsa
	MOVQ n+72(FP), CX
	MOVL $-1, R11
	BZHIL CX, R11, R11     // (1<<n)-1, all ones for n ≥ 32
	KMOVW R11, K1
	VBROADCASTSS alpha+80(FP), Z30
	VBROADCASTSS beta+84(FP), Z31

tile12x16:
	// Prefetch the C tile, which is accessed after the k loop.
	MOVQ ldc+56(FP), R12
	SHLQ $2, R12
	MOVQ R15, BX
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	PREFETCHROW1
	MOVQ R14, AX
	LEAQ (AX)(DX*8), DI    // row 8
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R12 // 3*ldb
	MOVQ k+0(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

	CMPQ CX, $4
	JLT  tail12x16

loop12x16:
	KSTEP16((BX), 64(BX))
	KSTEP16((BX)(R11*1), 64(BX)(R11*1))
	KSTEP16((BX)(R11*2), 64(BX)(R11*2))
	KSTEP16((BX)(R12*1), 64(BX)(R12*1))
	LEAQ (BX)(R11*4), BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop12x16
	TESTQ CX, CX
	JZ   store12x16

tail12x16:
	KSTEP16((BX), 64(BX))
	ADDQ R11, BX
	DECQ CX
	JNZ  tail12x16

store12x16:
	MOVQ R15, R11
	MOVQ ldc+56(FP), R12
	SHLQ $2, R12
	MOVL beta+84(FP), CX
	TESTL $0x7fffffff, CX  // beta == ±0: overwrite C
	JNZ  beta12x16
	STORE1(Z0)
	JZ   done12x16
	STORE1(Z1)
	JZ   done12x16
	STORE1(Z2)
	JZ   done12x16
	STORE1(Z3)
	JZ   done12x16
	STORE1(Z4)
	JZ   done12x16
	STORE1(Z5)
	JZ   done12x16
	STORE1(Z6)
	JZ   done12x16
	STORE1(Z7)
	JZ   done12x16
	STORE1(Z8)
	JZ   done12x16
	STORE1(Z9)
	JZ   done12x16
	STORE1(Z10)
	JZ   done12x16
	STORE1(Z11)
	JZ   done12x16
	JMP  next12x16

beta12x16:
	STOREBETA1(Z0)
	JZ   done12x16
	STOREBETA1(Z1)
	JZ   done12x16
	STOREBETA1(Z2)
	JZ   done12x16
	STOREBETA1(Z3)
	JZ   done12x16
	STOREBETA1(Z4)
	JZ   done12x16
	STOREBETA1(Z5)
	JZ   done12x16
	STOREBETA1(Z6)
	JZ   done12x16
	STOREBETA1(Z7)
	JZ   done12x16
	STOREBETA1(Z8)
	JZ   done12x16
	STOREBETA1(Z9)
	JZ   done12x16
	STOREBETA1(Z10)
	JZ   done12x16
	STOREBETA1(Z11)
	JZ   done12x16

next12x16:
	// Advance A and C by 12 rows; C already points there.
	LEAQ (R14)(DX*8), R14
	LEAQ (R14)(DX*4), R14
	MOVQ R11, R15
	JMP  tile12x16

done12x16:
	VZEROUPPER
	RET
