//go:build amd64 && !purego

#include "textflag.h"

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

// EXP8 replaces the eight floats in X by e**X (Cephes expf: clamp to
// [−87, 88], n = ⌊x·log2e + ½⌋, r = x − n·ln2 in two parts, degree-7
// polynomial, scale by 2**n through the exponent bits). N, R and P are
// clobbered.
#define EXP8(X, N, R, P) \
	VMINPS vconst<>+0(SB), X, X; \
	VMAXPS vconst<>+32(SB), X, X; \
	VMOVUPS vconst<>+96(SB), N; \
	VFMADD231PS vconst<>+64(SB), X, N; \
	VROUNDPS $9, N, N; \
	VMOVAPS X, R; \
	VFNMADD231PS vconst<>+128(SB), N, R; \
	VFNMADD231PS vconst<>+160(SB), N, R; \
	VMOVUPS vconst<>+192(SB), P; \
	VFMADD213PS vconst<>+224(SB), R, P; \
	VFMADD213PS vconst<>+256(SB), R, P; \
	VFMADD213PS vconst<>+288(SB), R, P; \
	VFMADD213PS vconst<>+320(SB), R, P; \
	VFMADD213PS vconst<>+352(SB), R, P; \
	VMULPS R, R, X; \
	VFMADD213PS R, X, P; \
	VADDPS vconst<>+384(SB), P, P; \
	VCVTTPS2DQ N, N; \
	VPADDD vconst<>+416(SB), N, N; \
	VPSLLD $23, N, N; \
	VMULPS N, P, X

// func expSubSumAVX2(x *float32, n int, c float32) float32
// x[i] = e**(x[i] − c) for i < n (n a positive multiple of 8); returns the sum.
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS c+16(FP), Y7
	VXORPS Y6, Y6, Y6
loop:
	VMOVUPS (SI), Y0
	VSUBPS Y7, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3)
	VMOVUPS Y0, (SI)
	VADDPS Y0, Y6, Y6
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ loop
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

// The SiLU loops form σ(g) = 1/(1 + e**−g) in Y4.

// func siluMulAVX2(gate, up, out *float32, n int)
// out[i] = g[i]·σ(g[i])·u[i] for i < n (n a positive multiple of 8).
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-32
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ n+24(FP), CX
loop:
	VMOVUPS (SI), Y0
	VXORPS Y4, Y4, Y4
	VSUBPS Y0, Y4, Y4
	EXP8(Y4, Y1, Y2, Y3)
	VADDPS vconst<>+384(SB), Y4, Y4
	VMOVUPS vconst<>+384(SB), Y1
	VDIVPS Y4, Y1, Y4
	VMULPS Y4, Y0, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop
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
loop:
	VMOVUPS (SI), Y0
	VSUBPS Y7, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3)
	VMOVUPS Y0, (SI)
	VMOVUPS (DI), Y4
	VSUBPS Y6, Y4, Y4
	VMULPS Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop
	VZEROUPPER
	RET

// func siluMulGradAVX2(gate, up, da, dg, du *float32, n int)
// With s = σ(g[i]): dg[i] = da[i]·u[i]·s·(1 + g[i]·(1 − s)) and
// du[i] = da[i]·g[i]·s, for i < n (n a positive multiple of 8).
TEXT ·siluMulGradAVX2(SB), NOSPLIT, $0-48
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DX
	MOVQ da+16(FP), R8
	MOVQ dg+24(FP), DI
	MOVQ du+32(FP), R9
	MOVQ n+40(FP), CX
	VMOVUPS vconst<>+384(SB), Y7
loop:
	VMOVUPS (SI), Y0
	VXORPS Y4, Y4, Y4
	VSUBPS Y0, Y4, Y4
	EXP8(Y4, Y1, Y2, Y3)
	VADDPS vconst<>+384(SB), Y4, Y4
	VMOVUPS vconst<>+384(SB), Y1
	VDIVPS Y4, Y1, Y4
	VMOVUPS (R8), Y5
	VMULPS Y4, Y0, Y1
	VMULPS Y5, Y1, Y1
	VMOVUPS Y1, (R9)
	VSUBPS Y4, Y7, Y2
	VMULPS Y0, Y2, Y2
	VADDPS Y7, Y2, Y2
	VMULPS Y4, Y2, Y2
	VMULPS (DX), Y5, Y5
	VMULPS Y5, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, DI
	ADDQ $32, R9
	SUBQ $8, CX
	JNZ loop
	VZEROUPPER
	RET
