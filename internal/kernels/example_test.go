package kernels_test

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/internal/kernels"
)

// A linear layer Y = X·Wᵀ with X [tokens, in] and W [out, in], all
// row-major.
func ExampleSgemm() {
	const tokens, in, out = 2, 3, 2
	x := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	w := []float32{
		1, 0, 0,
		0, 1, 1,
	}
	y := make([]float32, tokens*out)
	kernels.Sgemm(false, true, tokens, out, in, 1, x, in, w, in, 0, y, out)
	fmt.Println(y)
	// Output: [1 5 4 11]
}

// Options bounds the number of goroutines, for callers that already run
// several products in parallel (one per attention head, say).
func ExampleOptions_Sgemm() {
	a := []float32{1, 2, 3, 4} // 2×2
	c := []float32{1, 1, 1, 1}
	// C = 2·A·Aᵀ + C on a single goroutine.
	kernels.Options{Threads: 1}.Sgemm(false, true, 2, 2, 2, 2, a, 2, a, 2, 1, c, 2)
	fmt.Println(c)
	// Output: [11 23 23 51]
}

func ExampleSoftmax() {
	x := []float32{0, 0, float32(0.6931472)} // ln 2
	kernels.Softmax(x)
	fmt.Printf("%.3f\n", x)
	// Output: [0.250 0.250 0.500]
}
