//go:build amd64 && !purego

#include "textflag.h"

// expconst holds, 8 lanes each (32 bytes apart): log2(e); ln 2 split into a
// high part exact in few bits and the low remainder; the smallest argument
// with a normal result; the degree-5..0 polynomial coefficients for e^r on
// |r| ≤ ln2/2 (Cephes expf) less the constant and linear terms; 1.0; and the
// int32 exponent bias 127.
DATA expconst<>+0(SB)/4, $0x3fb8aa3b
DATA expconst<>+4(SB)/4, $0x3fb8aa3b
DATA expconst<>+8(SB)/4, $0x3fb8aa3b
DATA expconst<>+12(SB)/4, $0x3fb8aa3b
DATA expconst<>+16(SB)/4, $0x3fb8aa3b
DATA expconst<>+20(SB)/4, $0x3fb8aa3b
DATA expconst<>+24(SB)/4, $0x3fb8aa3b
DATA expconst<>+28(SB)/4, $0x3fb8aa3b
DATA expconst<>+32(SB)/4, $0x3f318000
DATA expconst<>+36(SB)/4, $0x3f318000
DATA expconst<>+40(SB)/4, $0x3f318000
DATA expconst<>+44(SB)/4, $0x3f318000
DATA expconst<>+48(SB)/4, $0x3f318000
DATA expconst<>+52(SB)/4, $0x3f318000
DATA expconst<>+56(SB)/4, $0x3f318000
DATA expconst<>+60(SB)/4, $0x3f318000
DATA expconst<>+64(SB)/4, $0xb95e8083
DATA expconst<>+68(SB)/4, $0xb95e8083
DATA expconst<>+72(SB)/4, $0xb95e8083
DATA expconst<>+76(SB)/4, $0xb95e8083
DATA expconst<>+80(SB)/4, $0xb95e8083
DATA expconst<>+84(SB)/4, $0xb95e8083
DATA expconst<>+88(SB)/4, $0xb95e8083
DATA expconst<>+92(SB)/4, $0xb95e8083
DATA expconst<>+96(SB)/4, $0xc2aeac50
DATA expconst<>+100(SB)/4, $0xc2aeac50
DATA expconst<>+104(SB)/4, $0xc2aeac50
DATA expconst<>+108(SB)/4, $0xc2aeac50
DATA expconst<>+112(SB)/4, $0xc2aeac50
DATA expconst<>+116(SB)/4, $0xc2aeac50
DATA expconst<>+120(SB)/4, $0xc2aeac50
DATA expconst<>+124(SB)/4, $0xc2aeac50
DATA expconst<>+128(SB)/4, $0x39506967
DATA expconst<>+132(SB)/4, $0x39506967
DATA expconst<>+136(SB)/4, $0x39506967
DATA expconst<>+140(SB)/4, $0x39506967
DATA expconst<>+144(SB)/4, $0x39506967
DATA expconst<>+148(SB)/4, $0x39506967
DATA expconst<>+152(SB)/4, $0x39506967
DATA expconst<>+156(SB)/4, $0x39506967
DATA expconst<>+160(SB)/4, $0x3ab743ce
DATA expconst<>+164(SB)/4, $0x3ab743ce
DATA expconst<>+168(SB)/4, $0x3ab743ce
DATA expconst<>+172(SB)/4, $0x3ab743ce
DATA expconst<>+176(SB)/4, $0x3ab743ce
DATA expconst<>+180(SB)/4, $0x3ab743ce
DATA expconst<>+184(SB)/4, $0x3ab743ce
DATA expconst<>+188(SB)/4, $0x3ab743ce
DATA expconst<>+192(SB)/4, $0x3c088908
DATA expconst<>+196(SB)/4, $0x3c088908
DATA expconst<>+200(SB)/4, $0x3c088908
DATA expconst<>+204(SB)/4, $0x3c088908
DATA expconst<>+208(SB)/4, $0x3c088908
DATA expconst<>+212(SB)/4, $0x3c088908
DATA expconst<>+216(SB)/4, $0x3c088908
DATA expconst<>+220(SB)/4, $0x3c088908
DATA expconst<>+224(SB)/4, $0x3d2aa9c1
DATA expconst<>+228(SB)/4, $0x3d2aa9c1
DATA expconst<>+232(SB)/4, $0x3d2aa9c1
DATA expconst<>+236(SB)/4, $0x3d2aa9c1
DATA expconst<>+240(SB)/4, $0x3d2aa9c1
DATA expconst<>+244(SB)/4, $0x3d2aa9c1
DATA expconst<>+248(SB)/4, $0x3d2aa9c1
DATA expconst<>+252(SB)/4, $0x3d2aa9c1
DATA expconst<>+256(SB)/4, $0x3e2aaaaa
DATA expconst<>+260(SB)/4, $0x3e2aaaaa
DATA expconst<>+264(SB)/4, $0x3e2aaaaa
DATA expconst<>+268(SB)/4, $0x3e2aaaaa
DATA expconst<>+272(SB)/4, $0x3e2aaaaa
DATA expconst<>+276(SB)/4, $0x3e2aaaaa
DATA expconst<>+280(SB)/4, $0x3e2aaaaa
DATA expconst<>+284(SB)/4, $0x3e2aaaaa
DATA expconst<>+288(SB)/4, $0x3f000000
DATA expconst<>+292(SB)/4, $0x3f000000
DATA expconst<>+296(SB)/4, $0x3f000000
DATA expconst<>+300(SB)/4, $0x3f000000
DATA expconst<>+304(SB)/4, $0x3f000000
DATA expconst<>+308(SB)/4, $0x3f000000
DATA expconst<>+312(SB)/4, $0x3f000000
DATA expconst<>+316(SB)/4, $0x3f000000
DATA expconst<>+320(SB)/4, $0x3f800000
DATA expconst<>+324(SB)/4, $0x3f800000
DATA expconst<>+328(SB)/4, $0x3f800000
DATA expconst<>+332(SB)/4, $0x3f800000
DATA expconst<>+336(SB)/4, $0x3f800000
DATA expconst<>+340(SB)/4, $0x3f800000
DATA expconst<>+344(SB)/4, $0x3f800000
DATA expconst<>+348(SB)/4, $0x3f800000
DATA expconst<>+352(SB)/4, $0x0000007f
DATA expconst<>+356(SB)/4, $0x0000007f
DATA expconst<>+360(SB)/4, $0x0000007f
DATA expconst<>+364(SB)/4, $0x0000007f
DATA expconst<>+368(SB)/4, $0x0000007f
DATA expconst<>+372(SB)/4, $0x0000007f
DATA expconst<>+376(SB)/4, $0x0000007f
DATA expconst<>+380(SB)/4, $0x0000007f
GLOBL expconst<>(SB), RODATA|NOPTR, $384

// func expSubAVX2(x *float32, n int, mx float32) float64
//
// Replaces x[i] by e^(x[i]-mx) for i < n and returns the sum of the results
// accumulated in float64; n must be a positive multiple of 8. Arguments below
// the normal range give 0, NaN stays NaN. This is the vector form of expf:
// Cody–Waite reduction t = n·ln2 + r, a degree-6 polynomial for e^r, and a
// multiplication by 2^n built in the exponent field.
TEXT ·expSubAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS mx+16(FP), Y15
	LEAQ expconst<>(SB), R8
	VMOVUPS 96(R8), Y11           // smallest argument
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8

loop:
	VMOVUPS (SI), Y0
	VSUBPS Y15, Y0, Y0            // t = x - mx
	VCMPPS $1, Y11, Y0, Y9        // t < smallest argument (false for NaN)
	VMAXPS Y0, Y11, Y0            // clamp; NaN in t is kept
	VMULPS (R8), Y0, Y1
	VROUNDPS $0, Y1, Y1           // n = round(t·log2 e)
	VMOVAPS Y0, Y2
	VFNMADD231PS 32(R8), Y1, Y2   // r = t - n·ln2hi
	VFNMADD231PS 64(R8), Y1, Y2   // r -= n·ln2lo
	VMOVUPS 128(R8), Y3
	VFMADD213PS 160(R8), Y2, Y3
	VFMADD213PS 192(R8), Y2, Y3
	VFMADD213PS 224(R8), Y2, Y3
	VFMADD213PS 256(R8), Y2, Y3
	VFMADD213PS 288(R8), Y2, Y3   // p(r)
	VMULPS Y2, Y2, Y4
	VFMADD213PS Y2, Y4, Y3        // p·r² + r
	VADDPS 320(R8), Y3, Y3        // e^r = p·r² + r + 1
	VCVTPS2DQ Y1, Y1
	VPADDD 352(R8), Y1, Y1
	VPSLLD $23, Y1, Y1            // 2^n
	VMULPS Y1, Y3, Y3
	VANDNPS Y3, Y9, Y3            // 0 below the normal range
	VMOVUPS Y3, (SI)
	VCVTPS2PD X3, Y5
	VEXTRACTF128 $1, Y3, X6
	VCVTPS2PD X6, Y6
	VADDPD Y5, Y7, Y7
	VADDPD Y6, Y8, Y8
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  loop

	VADDPD Y8, Y7, Y7
	VEXTRACTF128 $1, Y7, X8
	VADDPD X8, X7, X7
	VHADDPD X7, X7, X7
	VMOVSD X7, ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
//
// Returns the largest of x[0:n]; n must be a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JZ   reduce

maxloop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  maxloop

reduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET
