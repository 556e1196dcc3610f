//go:build amd64 && !purego

#include "textflag.h"

// sgemmKernel6x16 computes T = Ã·B̃ for a 6×16 tile, where
// Ã(i,p) = a[i*rsa + p*csa] and B̃(p,j) = b[p*ldb + j], and stores
// C = alpha*T + beta*C on the top m rows of the tile (all 16 columns; C is not
// read when beta == 0). Register use:
//
//	AX          A at the current column
//	DX, R8, R9  1, 3 and 5 times the A row stride in bytes
//	SI          A column stride in bytes
//	BX, R11-R12 B at the current row; 1 and 3 times its stride in bytes
//	CX          remaining k
//	Y0-Y11      accumulators, two per row
//	Y12-Y13     the current row of B
//	Y14-Y15     broadcast elements of A; later alpha and beta
//
// It requires k ≥ 1, 1 ≤ m ≤ 6, AVX2 and FMA.

// One k step: two B vectors, six A broadcasts, 12 FMAs; then A advances by
// one column.
#define KSTEP6x16(b0, b1) \
	VMOVUPS b0, Y12; \
	VMOVUPS b1, Y13; \
	VBROADCASTSS (AX), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS (AX)(DX*1), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS (AX)(DX*2), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS (AX)(R8*1), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7; \
	VBROADCASTSS (AX)(DX*4), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS (AX)(R9*1), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11; \
	ADDQ SI, AX

// Store one row: C = alpha*acc, then advance C by one row and decrement the
// row count in R13 (the caller branches on ZF).
#define STORE6x16(lo, hi) \
	VMULPS Y14, lo, lo; \
	VMULPS Y14, hi, hi; \
	VMOVUPS lo, (R11); \
	VMOVUPS hi, 32(R11); \
	ADDQ R12, R11; \
	DECQ R13

// As STORE6x16 with C = alpha*acc + beta*C.
#define STOREBETA6x16(lo, hi) \
	VMULPS Y14, lo, lo; \
	VMULPS Y14, hi, hi; \
	VFMADD231PS (R11), Y15, lo; \
	VFMADD231PS 32(R11), Y15, hi; \
	VMOVUPS lo, (R11); \
	VMOVUPS hi, 32(R11); \
	ADDQ R12, R11; \
	DECQ R13

// func sgemmKernel6x16(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc, m int, alpha, beta float32)
TEXT ·sgemmKernel6x16(SB), NOSPLIT, $0-80
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsa+16(FP), DX
	MOVQ csa+24(FP), SI
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	SHLQ $2, DX
	SHLQ $2, SI
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R12 // 3*ldb
	LEAQ (DX)(DX*2), R8    // 3*rsa
	LEAQ (DX)(DX*4), R9    // 5*rsa
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	CMPQ CX, $4
	JLT  tail

loop:
	KSTEP6x16((BX), 32(BX))
	KSTEP6x16((BX)(R11*1), 32(BX)(R11*1))
	KSTEP6x16((BX)(R11*2), 32(BX)(R11*2))
	KSTEP6x16((BX)(R12*1), 32(BX)(R12*1))
	LEAQ (BX)(R11*4), BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop
	TESTQ CX, CX
	JZ   store

tail:
	KSTEP6x16((BX), 32(BX))
	ADDQ R11, BX
	DECQ CX
	JNZ  tail

store:
	MOVQ c+48(FP), R11
	MOVQ ldc+56(FP), R12
	SHLQ $2, R12
	MOVQ m+64(FP), R13
	VBROADCASTSS alpha+72(FP), Y14
	MOVL beta+76(FP), R14
	TESTL $0x7fffffff, R14 // beta == ±0: overwrite C
	JNZ  withbeta
	STORE6x16(Y0, Y1)
	JZ   done
	STORE6x16(Y2, Y3)
	JZ   done
	STORE6x16(Y4, Y5)
	JZ   done
	STORE6x16(Y6, Y7)
	JZ   done
	STORE6x16(Y8, Y9)
	JZ   done
	STORE6x16(Y10, Y11)
	JZ   done

done:
	VZEROUPPER
	RET

withbeta:
	VBROADCASTSS beta+76(FP), Y15
	STOREBETA6x16(Y0, Y1)
	JZ   done
	STOREBETA6x16(Y2, Y3)
	JZ   done
	STOREBETA6x16(Y4, Y5)
	JZ   done
	STOREBETA6x16(Y6, Y7)
	JZ   done
	STOREBETA6x16(Y8, Y9)
	JZ   done
	STOREBETA6x16(Y10, Y11)
	JZ   done
	JMP  done
