package transformer

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// randomStored returns a rows × cols matrix of random 4-bit codes in groups
// of 32 (int4) or of random BF16 values.
func randomStored(rng *rand.Rand, rows, cols int, int4 bool) *kernels.Stored {
	if int4 {
		w := &kernels.Stored{Format: kernels.Quant, Rows: rows, Cols: cols, Bits: 4, Group: 32,
			Raw: make([]byte, rows*cols/2), Scales: make([]byte, 2*rows*cols/32)}
		for i := range w.Raw {
			w.Raw[i] = byte(rng.IntN(256))
		}
		for i := 0; i < len(w.Scales); i += 2 {
			binary.LittleEndian.PutUint16(w.Scales[i:], formats.Float32ToF16(float32(0.01+0.02*rng.Float64())))
		}
		return w
	}
	w := &kernels.Stored{Format: kernels.BF16, Rows: rows, Cols: cols, Raw: make([]byte, 2*rows*cols)}
	for i := 0; i < len(w.Raw); i += 2 {
		binary.LittleEndian.PutUint16(w.Raw[i:], formats.Float32ToBF16(float32(rng.NormFloat64())))
	}
	return w
}

// TestForwardRow checks that grouping a decoding step's products (dense
// stored matrices, VLoRA sums with factors, dense increments) into banded
// jobs gives, bit for bit, the products computed one after another, with
// 1 and 2 threads, and that an operator that is not made of stored
// matrices falls back to them.
func TestForwardRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const in = 1024
	var op func(t *testing.T, out int, kind string) Operator
	op = func(t *testing.T, out int, kind string) Operator {
		switch kind {
		case "stored4", "stored16":
			o, err := NewStoredOperator(randomStored(rng, out, in, kind == "stored4"))
			if err != nil {
				t.Fatal(err)
			}
			return o
		case "vlora", "vlora-nobase":
			var base Operator
			if kind == "vlora" {
				base, _ = NewStoredOperator(randomStored(rng, out, in, true))
			}
			b, _ := NewStoredOperator(randomStored(rng, out, 64, false))
			a, _ := NewStoredOperator(randomStored(rng, 64, in, true))
			o, err := NewSumOperator(base, b, a)
			if err != nil {
				t.Fatal(err)
			}
			return o
		case "delta":
			base, _ := NewStoredOperator(randomStored(rng, out, in, true))
			d, _ := NewStoredOperator(randomStored(rng, out, in, false))
			o, err := NewSumOperator(base, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		case "nested": // a sum whose base is itself a sum: not grouped
			inner := op(t, out, "vlora")
			b, _ := NewStoredOperator(randomStored(rng, out, 32, false))
			a, _ := NewStoredOperator(randomStored(rng, 32, in, false))
			o, err := NewSumOperator(inner, b, a)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		panic(kind)
	}
	for _, kinds := range [][]string{
		{"stored4", "stored4", "stored4"},
		{"vlora", "vlora", "vlora"},
		{"vlora", "stored16", "delta"},
		{"vlora-nobase"},
		{"stored4", "nested"},
		{"vlora"},
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%v/threads=%d", kinds, threads), func(t *testing.T) {
				x := make([]float32, in)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				var outs []rowOut
				var want [][]float32
				for k, kind := range kinds {
					rows := 1100 + 77*k
					l := &linear{op: op(t, rows, kind), out: rows, in: in}
					beta := float32(0)
					if k == 1 {
						beta = 1
					}
					y := make([]float32, rows)
					for i := range y {
						y[i] = float32(rng.NormFloat64())
					}
					ref := append([]float32(nil), y...)
					l.op.MulT(1, 1, x, in, ref, rows, beta)
					outs = append(outs, rowOut{l, y, beta})
					want = append(want, ref)
				}
				forwardRow(kernels.Options{Threads: threads}, x, outs)
				for k, r := range outs {
					for i := range r.y {
						if math.Float32bits(r.y[i]) != math.Float32bits(want[k][i]) {
							t.Fatalf("%s: y[%d] = %v, one product at a time %v", kinds[k], i, r.y[i], want[k][i])
						}
					}
				}
			})
		}
	}
}
