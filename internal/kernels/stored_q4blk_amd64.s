//go:build amd64 && !purego

#include "textflag.h"

// The block-order integer kernel of 4-bit matrices in groups of 32
// (stored_q8.go, "block order"): each 512-bit step takes 64 code bytes (4
// groups, 128 codes) and splits them into the low nibbles (the codes of
// even index) and the high nibbles (odd index) with one shift and two
// masks; the activations are stored in the same order, so two VPDPBUSD
// sum each group's 32 products exactly into its 4 lanes, which start from
// the group's offset −8·Σq (xc4). One conversion and one FMA by the
// group's scale·xs (expanded to 4 lanes by VPERMPS) per 128 codes. Tails
// of 2 and 1 groups run the same steps on 256- and 128-bit registers.
// Both lines of each 128 code bytes are prefetched 4 KiB ahead, the next
// page of a memory-mapped file, where the hardware prefetcher stops: in
// paired decoding runs of a 1.1 B int4 VLoRA file that took 20% less CPU
// time than one line 1 KiB ahead, and 8 KiB measured the same as 4 KiB.

// quadIdx expands 4 floats to 4 lanes each (VPERMPS).
DATA quadIdx<>+0(SB)/8, $0
DATA quadIdx<>+8(SB)/8, $0
DATA quadIdx<>+16(SB)/8, $0x0000000100000001
DATA quadIdx<>+24(SB)/8, $0x0000000100000001
DATA quadIdx<>+32(SB)/8, $0x0000000200000002
DATA quadIdx<>+40(SB)/8, $0x0000000200000002
DATA quadIdx<>+48(SB)/8, $0x0000000300000003
DATA quadIdx<>+56(SB)/8, $0x0000000300000003
GLOBL quadIdx<>(SB), RODATA|NOPTR, $64

// func q4q8BlocksVNNI512(codes, scales *byte, xq *int8, xs4 *float32, xc4 *int32, rows, groups int, y *float32)
TEXT ·q4q8BlocksVNNI512(SB), NOSPLIT, $0-64
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ rows+40(FP), R13
	MOVQ y+56(FP), DI
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Z14
	VMOVDQU32 quadIdx<>(SB), Z13

b4row:
	MOVQ xq+16(FP), R8
	MOVQ xs4+24(FP), R9
	MOVQ xc4+32(FP), R10
	MOVQ groups+48(FP), BX
	VXORPS Z0, Z0, Z0
	VXORPS Z6, Z6, Z6
	VXORPS Y1, Y1, Y1
	VXORPS X2, X2, X2
	SHRQ $2, BX
	JZ   b4tail
	SHRQ $1, BX
	JNC  b4pair

	// An odd number of 4-group blocks: one alone first.
	VMOVDQU64 (SI), Z10
	VPSRLW    $4, Z10, Z11
	VPANDD    Z14, Z10, Z10
	VPANDD    Z14, Z11, Z11
	VMOVDQU32 (R10), Z4
	VPDPBUSD  (R8), Z10, Z4
	VPDPBUSD  64(R8), Z11, Z4
	VMOVQ     (DX), X5
	VCVTPH2PS X5, X5
	VPERMPS   Z5, Z13, Z5
	VMULPS    (R9), Z5, Z5
	VCVTDQ2PS Z4, Z4
	VFMADD231PS Z5, Z4, Z0
	ADDQ $64, SI
	ADDQ $8, DX
	ADDQ $128, R8
	ADDQ $64, R9
	ADDQ $64, R10
	TESTQ BX, BX
	JZ   b4tail

b4pair:
	// Two 4-group blocks into two accumulators.
	VMOVDQU64 (SI), Z10
	VMOVDQU64 64(SI), Z7
	VPSRLW    $4, Z10, Z11
	VPSRLW    $4, Z7, Z8
	VPANDD    Z14, Z10, Z10
	VPANDD    Z14, Z11, Z11
	VPANDD    Z14, Z7, Z7
	VPANDD    Z14, Z8, Z8
	VMOVDQU32 (R10), Z4
	VMOVDQU32 64(R10), Z9
	VPDPBUSD  (R8), Z10, Z4
	VPDPBUSD  64(R8), Z11, Z4
	VPDPBUSD  128(R8), Z7, Z9
	VPDPBUSD  192(R8), Z8, Z9
	VMOVQ     (DX), X5
	VMOVQ     8(DX), X12
	VCVTPH2PS X5, X5
	VCVTPH2PS X12, X12
	VPERMPS   Z5, Z13, Z5
	VPERMPS   Z12, Z13, Z12
	VMULPS    (R9), Z5, Z5
	VMULPS    64(R9), Z12, Z12
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z9, Z9
	VFMADD231PS Z5, Z4, Z0
	VFMADD231PS Z12, Z9, Z6
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	ADDQ $128, SI
	ADDQ $16, DX
	ADDQ $256, R8
	ADDQ $128, R9
	ADDQ $128, R10
	DECQ BX
	JNZ  b4pair

b4tail:
	MOVQ groups+48(FP), BX
	TESTQ $2, BX
	JZ   b4tail1
	// Two groups: 32 code bytes.
	VMOVDQU   (SI), Y10
	VPSRLW    $4, Y10, Y11
	VPAND     Y14, Y10, Y10
	VPAND     Y14, Y11, Y11
	VMOVDQU   (R10), Y4
	VPDPBUSD  (R8), Y10, Y4
	VPDPBUSD  32(R8), Y11, Y4
	MOVL      (DX), AX
	VMOVD     AX, X5
	VCVTPH2PS X5, X5
	VPERMPS   Y5, Y13, Y5
	VMULPS    (R9), Y5, Y5
	VCVTDQ2PS Y4, Y4
	VFMADD231PS Y5, Y4, Y1
	ADDQ $32, SI
	ADDQ $4, DX
	ADDQ $64, R8
	ADDQ $32, R9
	ADDQ $32, R10

b4tail1:
	TESTQ $1, BX
	JZ   b4rowend
	// One group: 16 code bytes.
	VMOVDQU   (SI), X10
	VPSRLW    $4, X10, X11
	VPAND     X14, X10, X10
	VPAND     X14, X11, X11
	VMOVDQU   (R10), X4
	VPDPBUSD  (R8), X10, X4
	VPDPBUSD  16(R8), X11, X4
	MOVWLZX   (DX), AX
	VMOVD     AX, X5
	VCVTPH2PS X5, X5
	VBROADCASTSS X5, X5
	VMULPS    (R9), X5, X5
	VCVTDQ2PS X4, X4
	VFMADD231PS X5, X4, X2
	ADDQ $16, SI
	ADDQ $2, DX

b4rowend:
	VADDPS Z6, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y3
	VADDPS Y3, Y0, Y0
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X3
	VADDPS X3, X0, X0
	VADDPS X2, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R13
	JNZ  b4row
	VZEROUPPER
	RET

// evenIdx and oddIdx select the elements of even and odd index of two
// registers of 16 (VPERMI2D).
DATA evenIdx<>+0(SB)/8, $0x0000000200000000
DATA evenIdx<>+8(SB)/8, $0x0000000600000004
DATA evenIdx<>+16(SB)/8, $0x0000000a00000008
DATA evenIdx<>+24(SB)/8, $0x0000000e0000000c
DATA evenIdx<>+32(SB)/8, $0x0000001200000010
DATA evenIdx<>+40(SB)/8, $0x0000001600000014
DATA evenIdx<>+48(SB)/8, $0x0000001a00000018
DATA evenIdx<>+56(SB)/8, $0x0000001e0000001c
GLOBL evenIdx<>(SB), RODATA|NOPTR, $64

DATA oddIdx<>+0(SB)/8, $0x0000000300000001
DATA oddIdx<>+8(SB)/8, $0x0000000700000005
DATA oddIdx<>+16(SB)/8, $0x0000000b00000009
DATA oddIdx<>+24(SB)/8, $0x0000000f0000000d
DATA oddIdx<>+32(SB)/8, $0x0000001300000011
DATA oddIdx<>+40(SB)/8, $0x0000001700000015
DATA oddIdx<>+48(SB)/8, $0x0000001b00000019
DATA oddIdx<>+56(SB)/8, $0x0000001f0000001d
GLOBL oddIdx<>(SB), RODATA|NOPTR, $64

// func q8Group32AVX512(x *float32, even, odd *int8) (d float32, sum int32)
//
// Quantizes the 32 values at x to int8 with the step d = max|x|/127 (0
// for a zero group), rounding x·(1/d) to the nearest even integer, writes
// the 16 of even index to even and the 16 of odd index to odd, and
// returns d and the sum of the 32 codes: quantizeQ8Group's arithmetic.
TEXT ·q8Group32AVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ even+8(FP), DI
	MOVQ odd+16(FP), R8
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	MOVL $0x7FFFFFFF, AX
	VMOVD AX, X2
	VPBROADCASTD X2, Z2
	VPANDD Z2, Z0, Z3
	VPANDD Z2, Z1, Z4
	VMAXPS Z4, Z3, Z3
	VEXTRACTF64X4 $1, Z3, Y4
	VMAXPS Y4, Y3, Y3
	VEXTRACTF128 $1, Y3, X4
	VMAXPS X4, X3, X3
	VPERMILPS $0x4E, X3, X4
	VMAXPS X4, X3, X3
	VPERMILPS $0xB1, X3, X4
	VMAXPS X4, X3, X3
	MOVL $0x42FE0000, AX // 127
	VMOVD AX, X5
	VDIVSS X5, X3, X3 // d
	VMOVSS X3, d+24(FP)
	VXORPS X6, X6, X6
	VUCOMISS X6, X3
	JEQ  q8zero
	MOVL $0x3F800000, AX // 1
	VMOVD AX, X5
	VDIVSS X3, X5, X5 // 1/d
	VBROADCASTSS X5, Z5
	VMULPS Z5, Z0, Z0
	VMULPS Z5, Z1, Z1
	VCVTPS2DQ Z0, Z0
	VCVTPS2DQ Z1, Z1
	VMOVDQU32 evenIdx<>(SB), Z7
	VPERMI2D Z1, Z0, Z7
	VMOVDQU32 oddIdx<>(SB), Z8
	VPERMI2D Z1, Z0, Z8
	VPMOVSDB Z7, X7
	VPMOVSDB Z8, X8
	VMOVDQU X7, (DI)
	VMOVDQU X8, (R8)
	VPADDD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xB1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, AX
	MOVL AX, sum+28(FP)
	VZEROUPPER
	RET
q8zero:
	VXORPS X7, X7, X7
	VMOVDQU X7, (DI)
	VMOVDQU X7, (R8)
	MOVL $0, sum+28(FP)
	VZEROUPPER
	RET

// packIdx orders the eight row sums of q4q8Cols64VNNI512's reduction
// (lanes r0 r2 r4 r6 r1 r3 r5 r7) by row (VPERMPS).
DATA packIdx<>+0(SB)/8, $0x0000000400000000
DATA packIdx<>+8(SB)/8, $0x0000000500000001
DATA packIdx<>+16(SB)/8, $0x0000000600000002
DATA packIdx<>+24(SB)/8, $0x0000000700000003
GLOBL packIdx<>(SB), RODATA|NOPTR, $32

// COLS64 computes rows 2i and 2i+1 (64 code bytes at SI+64·i, 8 scale
// bytes at DX+8·i) into ACC: lanes 0–7 sum row 2i, lanes 8–15 row 2i+1.
#define COLS64(i, ACC) \
	VMOVDQU64 (64*i)(SI), Z10 \
	VPSRLW    $4, Z10, Z11 \
	VPANDD    Z14, Z10, Z10 \
	VPANDD    Z14, Z11, Z11 \
	VMOVDQA64 Z15, ACC \
	VPDPBUSD  Z8, Z10, ACC \
	VPDPBUSD  Z9, Z11, ACC \
	VMOVQ     (8*i)(DX), X5 \
	VCVTPH2PS X5, X5 \
	VPERMPS   Z5, Z13, Z5 \
	VMULPS    Z12, Z5, Z5 \
	VCVTDQ2PS ACC, ACC \
	VMULPS    Z5, ACC, ACC

// func q4q8Cols64VNNI512(codes, scales *byte, xq *int8, xs4 *float32, xc4 *int32, rows8 int, y *float32)
//
// The block-order kernel for matrices of 64 columns (two groups of 32 per
// row: a VLoRA layer's B factor of rank 64), eight rows at a time: the
// codes of two consecutive rows form one 4-group block, whose activations
// are the row's (xq, 64 bytes in block order; xs4, xc4 its 8 entries)
// twice. The eight sums are reduced together and stored as 8 floats.
TEXT ·q4q8Cols64VNNI512(SB), NOSPLIT, $0-56
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ xq+16(FP), R8
	MOVQ xs4+24(FP), R9
	MOVQ xc4+32(FP), R10
	MOVQ rows8+40(FP), R13
	MOVQ y+48(FP), DI
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Z14
	VMOVDQU32 quadIdx<>(SB), Z13
	// Even activations twice (Z8), odd twice (Z9), steps (Z12) and
	// offsets (Z15) twice.
	VMOVDQU     (R8), Y8
	VINSERTI64X4 $1, Y8, Z8, Z8
	VMOVDQU     32(R8), Y9
	VINSERTI64X4 $1, Y9, Z9, Z9
	VMOVUPS     (R9), Y12
	VINSERTF64X4 $1, Y12, Z12, Z12
	VMOVDQU     (R10), Y15
	VINSERTI64X4 $1, Y15, Z15, Z15
	VMOVDQU32 packIdx<>(SB), Y7
c64loop:
	COLS64(0, Z0)
	COLS64(1, Z1)
	COLS64(2, Z2)
	COLS64(3, Z3)
	// Z0 = rows 0|1, Z1 = 2|3, Z2 = 4|5, Z3 = 6|7 (8 lanes each): add
	// the halves of each row (Z4 = rows 0 1 2 3, Z5 = 4 5 6 7, four
	// lanes each), then three horizontal additions.
	VSHUFF32X4 $0x88, Z1, Z0, Z4
	VSHUFF32X4 $0xDD, Z1, Z0, Z6
	VADDPS Z6, Z4, Z4
	VSHUFF32X4 $0x88, Z3, Z2, Z5
	VSHUFF32X4 $0xDD, Z3, Z2, Z6
	VADDPS Z6, Z5, Z5
	VEXTRACTF64X4 $1, Z4, Y6
	VHADDPS Y6, Y4, Y4
	VEXTRACTF64X4 $1, Z5, Y6
	VHADDPS Y6, Y5, Y5
	VHADDPS Y5, Y4, Y1 // rows 0 2 4 6 | 1 3 5 7
	VPERMPS Y1, Y7, Y1
	VMOVUPS Y1, (DI)
	ADDQ $256, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ R13
	JNZ  c64loop
	VZEROUPPER
	RET
