//go:build amd64 && !purego

package transformer

import "golang.org/x/sys/cpu"

// haveAVX2 reports whether the AVX2+FMA loops of vec_amd64.s can run.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func expSubSumAVX2(x *float32, n int, c float32) float32

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func siluMulAVX2(gate, up, out *float32, n int)

//go:noescape
func softmaxGradAVX2(p, dp *float32, n int, l, ds float32)

//go:noescape
func siluMulGradAVX2(gate, up, da, dg, du *float32, n int)

//go:noescape
func sumSquaresAVX2(x *float32, n int) float32

//go:noescape
func scaleMulAVX2(x, w, y *float32, n int, r float32)

//go:noescape
func ropeRowAVX2(x, cos, sin *float32, heads, half int)
