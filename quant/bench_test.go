package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// Rows × cols of the benchmarks: a 2048 × 2048 projection (16 MiB in F32).
const benchRows, benchCols = 2048, 2048

// BenchmarkDequantize reports the throughput in bytes of float32 output.
func BenchmarkDequantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randMatrix(rng, benchRows, benchCols)
	dst := make([]float32, len(x))
	for _, s := range []Scheme{{8, 0, false}, {4, 32, false}, {3, 32, false}, {2, 32, false}, {6, 64, false}} {
		qt, err := Quantize(x, benchRows, benchCols, s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				qt.Dequantize(dst)
			}
		})
	}
}

// BenchmarkDecodeF32 is the reference: reading the same matrix from
// little-endian F32 bytes, as a loader of an F32 file does.
func BenchmarkDecodeF32(b *testing.B) {
	raw := make([]byte, 4*benchRows*benchCols)
	for i := 0; i < len(raw); i += 4 {
		binary.LittleEndian.PutUint32(raw[i:], math.Float32bits(float32(i)))
	}
	dst := make([]float32, benchRows*benchCols)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
}

// BenchmarkFakeQuant reports the throughput of the training forward's
// weight quantization, in bytes of float32 input.
func BenchmarkFakeQuant(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	x := randMatrix(rng, benchRows, benchCols)
	dst := make([]float32, len(x))
	for _, s := range []Scheme{{8, 0, false}, {4, 32, false}, {2, 32, true}} {
		b.Run(s.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				FakeQuant(dst, x, benchRows, benchCols, s)
			}
		})
	}
}
