package quant_test

import (
	"context"
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/quant"
)

// GPTQ rounding of one row of 4 weights in int2 whose inputs are strongly
// correlated: the rounding error of each column is compensated in the
// columns after it, so the output error on those inputs is smaller than
// round to nearest's, and the result is stored exactly by Quantize.
func ExampleRoundGPTQ() {
	w := []float32{0.26, 0.26, 0.26, 1.00}
	// The Gram matrix of inputs x with x₀ ≈ x₁ ≈ x₂ ≈ x₃.
	gram := mat.NewSymDense(4, []float64{
		1.0, 0.9, 0.9, 0.9,
		0.9, 1.0, 0.9, 0.9,
		0.9, 0.9, 1.0, 0.9,
		0.9, 0.9, 0.9, 1.0,
	})
	s := quant.Scheme{Bits: 2, GroupSize: 4, Full: true}
	gptq := make([]float32, 4)
	if err := quant.RoundGPTQ(context.Background(), gptq, w, 1, 4, s, gram, quant.GPTQOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	rtn := make([]float32, 4)
	quant.FakeQuant(rtn, w, 1, 4, s)
	// outErr is (w−q)·G·(w−q)ᵀ, the squared output error.
	outErr := func(q []float32) float64 {
		var e float64
		for i := range 4 {
			for j := range 4 {
				e += float64(w[i]-q[i]) * gram.At(i, j) * float64(w[j]-q[j])
			}
		}
		return e
	}
	again := make([]float32, 4)
	quant.FakeQuant(again, gptq, 1, 4, s)
	fmt.Printf("round to nearest %v, output error %.4f\n", rtn, outErr(rtn))
	fmt.Printf("GPTQ             %v, output error %.4f\n", gptq, outErr(gptq))
	fmt.Println("a fixed point of FakeQuant:", fmt.Sprint(again) == fmt.Sprint(gptq))
	// Output:
	// round to nearest [0.5 0.5 0.5 1], output error 0.4838
	// GPTQ             [0.5 -0 0.5 1], output error 0.0618
	// a fixed point of FakeQuant: true
}
