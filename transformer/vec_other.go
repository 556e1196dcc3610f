//go:build !amd64 || purego

package transformer

// haveAVX2 is false where the assembly loops are not built.
const haveAVX2 = false

func expSubSumAVX2(x *float32, n int, c float32) float32   { panic("transformer: no AVX2 loops") }
func maxAVX2(x *float32, n int) float32                    { panic("transformer: no AVX2 loops") }
func siluMulAVX2(gate, up, out *float32, n int)            { panic("transformer: no AVX2 loops") }
func softmaxGradAVX2(p, dp *float32, n int, l, ds float32) { panic("transformer: no AVX2 loops") }
func siluMulGradAVX2(gate, up, da, dg, du *float32, n int) { panic("transformer: no AVX2 loops") }

func sumSquaresAVX2(x *float32, n int) float32          { panic("transformer: no AVX2 loops") }
func scaleMulAVX2(x, w, y *float32, n int, r float32)   { panic("transformer: no AVX2 loops") }
func ropeRowAVX2(x, cos, sin *float32, heads, half int) { panic("transformer: no AVX2 loops") }
