//go:build amd64 && !purego

#include "textflag.h"

// Each loop handles 16 elements per iteration as two independent 8-lane
// chains (the exponential is a long dependency chain, so one chain leaves
// the vector units idle), then a last group of 8.

// The exponential is Cephes expf: clamp x to [−87, 88], n = ⌊x·log2e + ½⌋,
// r = x − n·ln2 (ln2 in two parts), a degree-7 polynomial for e**r, and
// scaling by 2**n through the exponent bits.

// vconst holds each constant broadcast to 8 lanes (32 bytes): at offset
// 0 the upper clamp 88, 32 the lower clamp −87, 64 log2e, 96 ½, 128 and 160
// the two parts of ln2, 192…352 the polynomial coefficients p0…p5, 384 the
// value 1, and 416 the int32 exponent bias 127.
DATA vconst<>+0(SB)/4, $0x42b00000
DATA vconst<>+4(SB)/4, $0x42b00000
DATA vconst<>+8(SB)/4, $0x42b00000
DATA vconst<>+12(SB)/4, $0x42b00000
DATA vconst<>+16(SB)/4, $0x42b00000
DATA vconst<>+20(SB)/4, $0x42b00000
DATA vconst<>+24(SB)/4, $0x42b00000
DATA vconst<>+28(SB)/4, $0x42b00000
DATA vconst<>+32(SB)/4, $0xc2ae0000
DATA vconst<>+36(SB)/4, $0xc2ae0000
DATA vconst<>+40(SB)/4, $0xc2ae0000
DATA vconst<>+44(SB)/4, $0xc2ae0000
DATA vconst<>+48(SB)/4, $0xc2ae0000
DATA vconst<>+52(SB)/4, $0xc2ae0000
DATA vconst<>+56(SB)/4, $0xc2ae0000
DATA vconst<>+60(SB)/4, $0xc2ae0000
DATA vconst<>+64(SB)/4, $0x3fb8aa3b
DATA vconst<>+68(SB)/4, $0x3fb8aa3b
DATA vconst<>+72(SB)/4, $0x3fb8aa3b
DATA vconst<>+76(SB)/4, $0x3fb8aa3b
DATA vconst<>+80(SB)/4, $0x3fb8aa3b
DATA vconst<>+84(SB)/4, $0x3fb8aa3b
DATA vconst<>+88(SB)/4, $0x3fb8aa3b
DATA vconst<>+92(SB)/4, $0x3fb8aa3b
DATA vconst<>+96(SB)/4, $0x3f000000
DATA vconst<>+100(SB)/4, $0x3f000000
DATA vconst<>+104(SB)/4, $0x3f000000
DATA vconst<>+108(SB)/4, $0x3f000000
DATA vconst<>+112(SB)/4, $0x3f000000
DATA vconst<>+116(SB)/4, $0x3f000000
DATA vconst<>+120(SB)/4, $0x3f000000
DATA vconst<>+124(SB)/4, $0x3f000000
DATA vconst<>+128(SB)/4, $0x3f318000
DATA vconst<>+132(SB)/4, $0x3f318000
DATA vconst<>+136(SB)/4, $0x3f318000
DATA vconst<>+140(SB)/4, $0x3f318000
DATA vconst<>+144(SB)/4, $0x3f318000
DATA vconst<>+148(SB)/4, $0x3f318000
DATA vconst<>+152(SB)/4, $0x3f318000
DATA vconst<>+156(SB)/4, $0x3f318000
DATA vconst<>+160(SB)/4, $0xb95e8083
DATA vconst<>+164(SB)/4, $0xb95e8083
DATA vconst<>+168(SB)/4, $0xb95e8083
DATA vconst<>+172(SB)/4, $0xb95e8083
DATA vconst<>+176(SB)/4, $0xb95e8083
DATA vconst<>+180(SB)/4, $0xb95e8083
DATA vconst<>+184(SB)/4, $0xb95e8083
DATA vconst<>+188(SB)/4, $0xb95e8083
DATA vconst<>+192(SB)/4, $0x39506967
DATA vconst<>+196(SB)/4, $0x39506967
DATA vconst<>+200(SB)/4, $0x39506967
DATA vconst<>+204(SB)/4, $0x39506967
DATA vconst<>+208(SB)/4, $0x39506967
DATA vconst<>+212(SB)/4, $0x39506967
DATA vconst<>+216(SB)/4, $0x39506967
DATA vconst<>+220(SB)/4, $0x39506967
DATA vconst<>+224(SB)/4, $0x3ab743ce
DATA vconst<>+228(SB)/4, $0x3ab743ce
DATA vconst<>+232(SB)/4, $0x3ab743ce
DATA vconst<>+236(SB)/4, $0x3ab743ce
DATA vconst<>+240(SB)/4, $0x3ab743ce
DATA vconst<>+244(SB)/4, $0x3ab743ce
DATA vconst<>+248(SB)/4, $0x3ab743ce
DATA vconst<>+252(SB)/4, $0x3ab743ce
DATA vconst<>+256(SB)/4, $0x3c088908
DATA vconst<>+260(SB)/4, $0x3c088908
DATA vconst<>+264(SB)/4, $0x3c088908
DATA vconst<>+268(SB)/4, $0x3c088908
DATA vconst<>+272(SB)/4, $0x3c088908
DATA vconst<>+276(SB)/4, $0x3c088908
DATA vconst<>+280(SB)/4, $0x3c088908
DATA vconst<>+284(SB)/4, $0x3c088908
DATA vconst<>+288(SB)/4, $0x3d2aa9c1
DATA vconst<>+292(SB)/4, $0x3d2aa9c1
DATA vconst<>+296(SB)/4, $0x3d2aa9c1
DATA vconst<>+300(SB)/4, $0x3d2aa9c1
DATA vconst<>+304(SB)/4, $0x3d2aa9c1
DATA vconst<>+308(SB)/4, $0x3d2aa9c1
DATA vconst<>+312(SB)/4, $0x3d2aa9c1
DATA vconst<>+316(SB)/4, $0x3d2aa9c1
DATA vconst<>+320(SB)/4, $0x3e2aaaaa
DATA vconst<>+324(SB)/4, $0x3e2aaaaa
DATA vconst<>+328(SB)/4, $0x3e2aaaaa
DATA vconst<>+332(SB)/4, $0x3e2aaaaa
DATA vconst<>+336(SB)/4, $0x3e2aaaaa
DATA vconst<>+340(SB)/4, $0x3e2aaaaa
DATA vconst<>+344(SB)/4, $0x3e2aaaaa
DATA vconst<>+348(SB)/4, $0x3e2aaaaa
DATA vconst<>+352(SB)/4, $0x3f000000
DATA vconst<>+356(SB)/4, $0x3f000000
DATA vconst<>+360(SB)/4, $0x3f000000
DATA vconst<>+364(SB)/4, $0x3f000000
DATA vconst<>+368(SB)/4, $0x3f000000
DATA vconst<>+372(SB)/4, $0x3f000000
DATA vconst<>+376(SB)/4, $0x3f000000
DATA vconst<>+380(SB)/4, $0x3f000000
DATA vconst<>+384(SB)/4, $0x3f800000
DATA vconst<>+388(SB)/4, $0x3f800000
DATA vconst<>+392(SB)/4, $0x3f800000
DATA vconst<>+396(SB)/4, $0x3f800000
DATA vconst<>+400(SB)/4, $0x3f800000
DATA vconst<>+404(SB)/4, $0x3f800000
DATA vconst<>+408(SB)/4, $0x3f800000
DATA vconst<>+412(SB)/4, $0x3f800000
DATA vconst<>+416(SB)/4, $0x0000007f
DATA vconst<>+420(SB)/4, $0x0000007f
DATA vconst<>+424(SB)/4, $0x0000007f
DATA vconst<>+428(SB)/4, $0x0000007f
DATA vconst<>+432(SB)/4, $0x0000007f
DATA vconst<>+436(SB)/4, $0x0000007f
DATA vconst<>+440(SB)/4, $0x0000007f
DATA vconst<>+444(SB)/4, $0x0000007f
GLOBL vconst<>(SB), RODATA|NOPTR, $448

// func expSubSumAVX2(x *float32, n int, c float32) float32
// x[i] = e**(x[i] − c) for i < n (n a positive multiple of 8); returns the sum.
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS c+16(FP), Y7
	VXORPS Y6, Y6, Y6
	VXORPS Y14, Y14, Y14
exp16:
	CMPQ CX, $16
	JLT exp8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y8
	VSUBPS Y7, Y0, Y0
	VSUBPS Y7, Y8, Y8
	VMINPS vconst<>+0(SB), Y0, Y0
	VMINPS vconst<>+0(SB), Y8, Y8
	VMAXPS vconst<>+32(SB), Y0, Y0
	VMAXPS vconst<>+32(SB), Y8, Y8
	VMOVUPS vconst<>+96(SB), Y1
	VMOVUPS vconst<>+96(SB), Y9
	VFMADD231PS vconst<>+64(SB), Y0, Y1
	VFMADD231PS vconst<>+64(SB), Y8, Y9
	VROUNDPS $9, Y1, Y1
	VROUNDPS $9, Y9, Y9
	VMOVAPS Y0, Y2
	VMOVAPS Y8, Y10
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+128(SB), Y9, Y10
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y9, Y10
	VMOVUPS vconst<>+192(SB), Y3
	VMOVUPS vconst<>+192(SB), Y11
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+224(SB), Y10, Y11
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y10, Y11
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y10, Y11
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y10, Y11
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y10, Y11
	VMULPS Y2, Y2, Y0
	VMULPS Y10, Y10, Y8
	VFMADD213PS Y2, Y0, Y3
	VFMADD213PS Y10, Y8, Y11
	VADDPS vconst<>+384(SB), Y3, Y3
	VADDPS vconst<>+384(SB), Y11, Y11
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y9, Y9
	VPADDD vconst<>+416(SB), Y1, Y1
	VPADDD vconst<>+416(SB), Y9, Y9
	VPSLLD $23, Y1, Y1
	VPSLLD $23, Y9, Y9
	VMULPS Y1, Y3, Y0
	VMULPS Y9, Y11, Y8
	VMOVUPS Y0, 0(SI)
	VMOVUPS Y8, 32(SI)
	VADDPS Y0, Y6, Y6
	VADDPS Y8, Y14, Y14
	ADDQ $64, SI
	SUBQ $16, CX
	JMP exp16
exp8:
	CMPQ CX, $8
	JLT expdone
	VMOVUPS 0(SI), Y0
	VSUBPS Y7, Y0, Y0
	VMINPS vconst<>+0(SB), Y0, Y0
	VMAXPS vconst<>+32(SB), Y0, Y0
	VMOVUPS vconst<>+96(SB), Y1
	VFMADD231PS vconst<>+64(SB), Y0, Y1
	VROUNDPS $9, Y1, Y1
	VMOVAPS Y0, Y2
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VMOVUPS vconst<>+192(SB), Y3
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VMULPS Y2, Y2, Y0
	VFMADD213PS Y2, Y0, Y3
	VADDPS vconst<>+384(SB), Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD vconst<>+416(SB), Y1, Y1
	VPSLLD $23, Y1, Y1
	VMULPS Y1, Y3, Y0
	VMOVUPS Y0, 0(SI)
	VADDPS Y0, Y6, Y6
	ADDQ $32, SI
	SUBQ $8, CX
	JMP exp8
expdone:
	VADDPS Y14, Y6, Y6
	VEXTRACTF128 $1, Y6, X1
	VADDPS X1, X6, X6
	VHADDPS X6, X6, X6
	VHADDPS X6, X6, X6
	VZEROUPPER
	MOVSS X6, ret+24(FP)
	RET

// func maxAVX2(x *float32, n int) float32
// Returns the largest of x[0..n) (n a positive multiple of 8).
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y6
	ADDQ $32, SI
	SUBQ $8, CX
	JZ done
loop:
	VMAXPS (SI), Y6, Y6
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ loop
done:
	VEXTRACTF128 $1, Y6, X1
	VMAXPS X1, X6, X6
	VPERMILPS $0x4e, X6, X1
	VMAXPS X1, X6, X6
	VPERMILPS $0xb1, X6, X1
	VMAXPS X1, X6, X6
	VZEROUPPER
	MOVSS X6, ret+16(FP)
	RET

// func siluMulAVX2(gate, up, out *float32, n int)
// out[i] = gate[i]·σ(gate[i])·up[i] for i < n (n a positive multiple of 8).
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-32
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ n+24(FP), CX
silu16:
	CMPQ CX, $16
	JLT silu8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y8
	VXORPS Y4, Y4, Y4
	VXORPS Y12, Y12, Y12
	VSUBPS Y0, Y4, Y4
	VSUBPS Y8, Y12, Y12
	VMINPS vconst<>+0(SB), Y4, Y4
	VMINPS vconst<>+0(SB), Y12, Y12
	VMAXPS vconst<>+32(SB), Y4, Y4
	VMAXPS vconst<>+32(SB), Y12, Y12
	VMOVUPS vconst<>+96(SB), Y1
	VMOVUPS vconst<>+96(SB), Y9
	VFMADD231PS vconst<>+64(SB), Y4, Y1
	VFMADD231PS vconst<>+64(SB), Y12, Y9
	VROUNDPS $9, Y1, Y1
	VROUNDPS $9, Y9, Y9
	VMOVAPS Y4, Y2
	VMOVAPS Y12, Y10
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+128(SB), Y9, Y10
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y9, Y10
	VMOVUPS vconst<>+192(SB), Y3
	VMOVUPS vconst<>+192(SB), Y11
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+224(SB), Y10, Y11
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y10, Y11
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y10, Y11
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y10, Y11
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y10, Y11
	VMULPS Y2, Y2, Y4
	VMULPS Y10, Y10, Y12
	VFMADD213PS Y2, Y4, Y3
	VFMADD213PS Y10, Y12, Y11
	VADDPS vconst<>+384(SB), Y3, Y3
	VADDPS vconst<>+384(SB), Y11, Y11
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y9, Y9
	VPADDD vconst<>+416(SB), Y1, Y1
	VPADDD vconst<>+416(SB), Y9, Y9
	VPSLLD $23, Y1, Y1
	VPSLLD $23, Y9, Y9
	VMULPS Y1, Y3, Y4
	VMULPS Y9, Y11, Y12
	VADDPS vconst<>+384(SB), Y4, Y4
	VADDPS vconst<>+384(SB), Y12, Y12
	VMOVUPS vconst<>+384(SB), Y1
	VMOVUPS vconst<>+384(SB), Y9
	VDIVPS Y4, Y1, Y4
	VDIVPS Y12, Y9, Y12
	VMULPS Y4, Y0, Y0
	VMULPS Y12, Y8, Y8
	VMULPS 0(DX), Y0, Y0
	VMULPS 32(DX), Y8, Y8
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	SUBQ $16, CX
	JMP silu16
silu8:
	CMPQ CX, $8
	JLT siludone
	VMOVUPS 0(SI), Y0
	VXORPS Y4, Y4, Y4
	VSUBPS Y0, Y4, Y4
	VMINPS vconst<>+0(SB), Y4, Y4
	VMAXPS vconst<>+32(SB), Y4, Y4
	VMOVUPS vconst<>+96(SB), Y1
	VFMADD231PS vconst<>+64(SB), Y4, Y1
	VROUNDPS $9, Y1, Y1
	VMOVAPS Y4, Y2
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VMOVUPS vconst<>+192(SB), Y3
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VMULPS Y2, Y2, Y4
	VFMADD213PS Y2, Y4, Y3
	VADDPS vconst<>+384(SB), Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD vconst<>+416(SB), Y1, Y1
	VPSLLD $23, Y1, Y1
	VMULPS Y1, Y3, Y4
	VADDPS vconst<>+384(SB), Y4, Y4
	VMOVUPS vconst<>+384(SB), Y1
	VDIVPS Y4, Y1, Y4
	VMULPS Y4, Y0, Y0
	VMULPS 0(DX), Y0, Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP silu8
siludone:
	VZEROUPPER
	RET

// func softmaxGradAVX2(p, dp *float32, n int, l, ds float32)
// e = e**(p[i] − l); p[i] = e; dp[i] = e·(dp[i] − ds) for i < n (n a
// positive multiple of 8).
TEXT ·softmaxGradAVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ dp+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSS l+24(FP), Y7
	VBROADCASTSS ds+28(FP), Y6
sg16:
	CMPQ CX, $16
	JLT sg8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y8
	VSUBPS Y7, Y0, Y0
	VSUBPS Y7, Y8, Y8
	VMINPS vconst<>+0(SB), Y0, Y0
	VMINPS vconst<>+0(SB), Y8, Y8
	VMAXPS vconst<>+32(SB), Y0, Y0
	VMAXPS vconst<>+32(SB), Y8, Y8
	VMOVUPS vconst<>+96(SB), Y1
	VMOVUPS vconst<>+96(SB), Y9
	VFMADD231PS vconst<>+64(SB), Y0, Y1
	VFMADD231PS vconst<>+64(SB), Y8, Y9
	VROUNDPS $9, Y1, Y1
	VROUNDPS $9, Y9, Y9
	VMOVAPS Y0, Y2
	VMOVAPS Y8, Y10
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+128(SB), Y9, Y10
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y9, Y10
	VMOVUPS vconst<>+192(SB), Y3
	VMOVUPS vconst<>+192(SB), Y11
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+224(SB), Y10, Y11
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y10, Y11
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y10, Y11
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y10, Y11
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y10, Y11
	VMULPS Y2, Y2, Y0
	VMULPS Y10, Y10, Y8
	VFMADD213PS Y2, Y0, Y3
	VFMADD213PS Y10, Y8, Y11
	VADDPS vconst<>+384(SB), Y3, Y3
	VADDPS vconst<>+384(SB), Y11, Y11
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y9, Y9
	VPADDD vconst<>+416(SB), Y1, Y1
	VPADDD vconst<>+416(SB), Y9, Y9
	VPSLLD $23, Y1, Y1
	VPSLLD $23, Y9, Y9
	VMULPS Y1, Y3, Y0
	VMULPS Y9, Y11, Y8
	VMOVUPS Y0, 0(SI)
	VMOVUPS Y8, 32(SI)
	VMOVUPS 0(DI), Y4
	VMOVUPS 32(DI), Y12
	VSUBPS Y6, Y4, Y4
	VSUBPS Y6, Y12, Y12
	VMULPS Y4, Y0, Y0
	VMULPS Y12, Y8, Y8
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP sg16
sg8:
	CMPQ CX, $8
	JLT sgdone
	VMOVUPS 0(SI), Y0
	VSUBPS Y7, Y0, Y0
	VMINPS vconst<>+0(SB), Y0, Y0
	VMAXPS vconst<>+32(SB), Y0, Y0
	VMOVUPS vconst<>+96(SB), Y1
	VFMADD231PS vconst<>+64(SB), Y0, Y1
	VROUNDPS $9, Y1, Y1
	VMOVAPS Y0, Y2
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VMOVUPS vconst<>+192(SB), Y3
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VMULPS Y2, Y2, Y0
	VFMADD213PS Y2, Y0, Y3
	VADDPS vconst<>+384(SB), Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD vconst<>+416(SB), Y1, Y1
	VPSLLD $23, Y1, Y1
	VMULPS Y1, Y3, Y0
	VMOVUPS Y0, 0(SI)
	VMOVUPS 0(DI), Y4
	VSUBPS Y6, Y4, Y4
	VMULPS Y4, Y0, Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP sg8
sgdone:
	VZEROUPPER
	RET

// func siluMulGradAVX2(gate, up, da, dg, du *float32, n int)
// With s = σ(gate[i]): dg[i] = da[i]·up[i]·s·(1 + gate[i]·(1 − s)) and
// du[i] = da[i]·gate[i]·s, for i < n (n a positive multiple of 8).
TEXT ·siluMulGradAVX2(SB), NOSPLIT, $0-48
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DX
	MOVQ da+16(FP), R8
	MOVQ dg+24(FP), DI
	MOVQ du+32(FP), R9
	MOVQ n+40(FP), CX
	VMOVUPS vconst<>+384(SB), Y7
sgrad16:
	CMPQ CX, $16
	JLT sgrad8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y8
	VXORPS Y4, Y4, Y4
	VXORPS Y12, Y12, Y12
	VSUBPS Y0, Y4, Y4
	VSUBPS Y8, Y12, Y12
	VMINPS vconst<>+0(SB), Y4, Y4
	VMINPS vconst<>+0(SB), Y12, Y12
	VMAXPS vconst<>+32(SB), Y4, Y4
	VMAXPS vconst<>+32(SB), Y12, Y12
	VMOVUPS vconst<>+96(SB), Y1
	VMOVUPS vconst<>+96(SB), Y9
	VFMADD231PS vconst<>+64(SB), Y4, Y1
	VFMADD231PS vconst<>+64(SB), Y12, Y9
	VROUNDPS $9, Y1, Y1
	VROUNDPS $9, Y9, Y9
	VMOVAPS Y4, Y2
	VMOVAPS Y12, Y10
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+128(SB), Y9, Y10
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y9, Y10
	VMOVUPS vconst<>+192(SB), Y3
	VMOVUPS vconst<>+192(SB), Y11
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+224(SB), Y10, Y11
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y10, Y11
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y10, Y11
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y10, Y11
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y10, Y11
	VMULPS Y2, Y2, Y4
	VMULPS Y10, Y10, Y12
	VFMADD213PS Y2, Y4, Y3
	VFMADD213PS Y10, Y12, Y11
	VADDPS vconst<>+384(SB), Y3, Y3
	VADDPS vconst<>+384(SB), Y11, Y11
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y9, Y9
	VPADDD vconst<>+416(SB), Y1, Y1
	VPADDD vconst<>+416(SB), Y9, Y9
	VPSLLD $23, Y1, Y1
	VPSLLD $23, Y9, Y9
	VMULPS Y1, Y3, Y4
	VMULPS Y9, Y11, Y12
	VADDPS vconst<>+384(SB), Y4, Y4
	VADDPS vconst<>+384(SB), Y12, Y12
	VMOVUPS vconst<>+384(SB), Y1
	VMOVUPS vconst<>+384(SB), Y9
	VDIVPS Y4, Y1, Y4
	VDIVPS Y12, Y9, Y12
	VMOVUPS 0(R8), Y5
	VMOVUPS 32(R8), Y13
	VMULPS Y4, Y0, Y1
	VMULPS Y12, Y8, Y9
	VMULPS Y5, Y1, Y1
	VMULPS Y13, Y9, Y9
	VMOVUPS Y1, 0(R9)
	VMOVUPS Y9, 32(R9)
	VSUBPS Y4, Y7, Y2
	VSUBPS Y12, Y7, Y10
	VMULPS Y0, Y2, Y2
	VMULPS Y8, Y10, Y10
	VADDPS Y7, Y2, Y2
	VADDPS Y7, Y10, Y10
	VMULPS Y4, Y2, Y2
	VMULPS Y12, Y10, Y10
	VMULPS 0(DX), Y5, Y5
	VMULPS 32(DX), Y13, Y13
	VMULPS Y5, Y2, Y2
	VMULPS Y13, Y10, Y10
	VMOVUPS Y2, 0(DI)
	VMOVUPS Y10, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, R8
	ADDQ $64, DI
	ADDQ $64, R9
	SUBQ $16, CX
	JMP sgrad16
sgrad8:
	CMPQ CX, $8
	JLT sgraddone
	VMOVUPS 0(SI), Y0
	VXORPS Y4, Y4, Y4
	VSUBPS Y0, Y4, Y4
	VMINPS vconst<>+0(SB), Y4, Y4
	VMAXPS vconst<>+32(SB), Y4, Y4
	VMOVUPS vconst<>+96(SB), Y1
	VFMADD231PS vconst<>+64(SB), Y4, Y1
	VROUNDPS $9, Y1, Y1
	VMOVAPS Y4, Y2
	VFNMADD231PS vconst<>+128(SB), Y1, Y2
	VFNMADD231PS vconst<>+160(SB), Y1, Y2
	VMOVUPS vconst<>+192(SB), Y3
	VFMADD213PS vconst<>+224(SB), Y2, Y3
	VFMADD213PS vconst<>+256(SB), Y2, Y3
	VFMADD213PS vconst<>+288(SB), Y2, Y3
	VFMADD213PS vconst<>+320(SB), Y2, Y3
	VFMADD213PS vconst<>+352(SB), Y2, Y3
	VMULPS Y2, Y2, Y4
	VFMADD213PS Y2, Y4, Y3
	VADDPS vconst<>+384(SB), Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD vconst<>+416(SB), Y1, Y1
	VPSLLD $23, Y1, Y1
	VMULPS Y1, Y3, Y4
	VADDPS vconst<>+384(SB), Y4, Y4
	VMOVUPS vconst<>+384(SB), Y1
	VDIVPS Y4, Y1, Y4
	VMOVUPS 0(R8), Y5
	VMULPS Y4, Y0, Y1
	VMULPS Y5, Y1, Y1
	VMOVUPS Y1, 0(R9)
	VSUBPS Y4, Y7, Y2
	VMULPS Y0, Y2, Y2
	VADDPS Y7, Y2, Y2
	VMULPS Y4, Y2, Y2
	VMULPS 0(DX), Y5, Y5
	VMULPS Y5, Y2, Y2
	VMOVUPS Y2, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, DI
	ADDQ $32, R9
	SUBQ $8, CX
	JMP sgrad8
sgraddone:
	VZEROUPPER
	RET

// func sumSquaresAVX2(x *float32, n int) float32
// Returns Σ x[i]² over i < n (n a positive multiple of 8), accumulated in
// two 8-lane float32 partial sums.
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
ss16:
	CMPQ CX, $16
	JLT ss8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VFMADD231PS Y0, Y0, Y6
	VFMADD231PS Y1, Y1, Y7
	ADDQ $64, SI
	SUBQ $16, CX
	JMP ss16
ss8:
	CMPQ CX, $8
	JLT ssdone
	VMOVUPS (SI), Y0
	VFMADD231PS Y0, Y0, Y6
	ADDQ $32, SI
	SUBQ $8, CX
	JMP ss8
ssdone:
	VADDPS Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X1
	VADDPS X1, X6, X6
	VHADDPS X6, X6, X6
	VHADDPS X6, X6, X6
	VZEROUPPER
	MOVSS X6, ret+16(FP)
	RET

// func scaleMulAVX2(x, w, y *float32, n int, r float32)
// y[i] = w[i]·(x[i]·r) for i < n (n a positive multiple of 8).
TEXT ·scaleMulAVX2(SB), NOSPLIT, $0-36
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DX
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	VBROADCASTSS r+32(FP), Y7
sm:
	VMOVUPS (SI), Y0
	VMULPS Y7, Y0, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ sm
	VZEROUPPER
	RET

// func ropeRowAVX2(x, cos, sin *float32, heads, half int)
// Rotates heads consecutive head vectors of 2·half values at x (half a
// positive multiple of 8) by the angles whose cos and sin are given (half
// values each): lo, hi = lo·c − hi·s, hi·c + lo·s.
TEXT ·ropeRowAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ cos+8(FP), R8
	MOVQ sin+16(FP), R9
	MOVQ heads+24(FP), BX
	MOVQ half+32(FP), R10
	MOVQ R10, R11
	SHLQ $2, R11          // bytes per half
rhead:
	XORQ AX, AX
	MOVQ SI, DI
	ADDQ R11, DI          // DI = hi half
rlane:
	VMOVUPS (SI)(AX*1), Y0     // lo
	VMOVUPS (DI)(AX*1), Y1     // hi
	VMOVUPS (R8)(AX*1), Y2     // c
	VMOVUPS (R9)(AX*1), Y3     // s
	VMULPS Y2, Y0, Y4          // lo·c
	VMULPS Y3, Y1, Y5          // hi·s
	VSUBPS Y5, Y4, Y4          // lo·c − hi·s
	VMULPS Y2, Y1, Y5          // hi·c
	VMULPS Y3, Y0, Y6          // lo·s
	VADDPS Y6, Y5, Y5          // hi·c + lo·s
	VMOVUPS Y4, (SI)(AX*1)
	VMOVUPS Y5, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, R11
	JLT rlane
	ADDQ R11, SI
	ADDQ R11, SI
	DECQ BX
	JNZ rhead
	VZEROUPPER
	RET
