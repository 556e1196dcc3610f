package vlora_test

import (
	"fmt"
	"strings"

	"github.com/vlora-convert/vlora-convert/vlora"
)

// Find the repeated layer stack among a checkpoint's tensor names and cut it
// into compounds of K = 2 layers.
func ExampleDetectStack() {
	names := []string{"embed.weight", "head.weight"}
	for l := range 5 {
		names = append(names, fmt.Sprintf("blocks.%d.attn.weight", l), fmt.Sprintf("blocks.%d.norm.weight", l))
	}
	shape := func(name string) vlora.TensorShape {
		if strings.HasSuffix(name, "norm.weight") {
			return vlora.TensorShape{Shape: []int{8}, DType: "F32"}
		}
		return vlora.TensorShape{Shape: []int{8, 8}, DType: "F32"}
	}
	st, err := vlora.DetectStack(names, shape)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Prefix, st.NumLayers, st.Suffixes)
	fmt.Println(st.Name(3, "attn.weight"))
	fmt.Println(vlora.Compounds(st.NumLayers, 2))
	// Output:
	// blocks. 5 [attn.weight norm.weight]
	// blocks.3.attn.weight
	// [[0 1] [2 3] [4]]
}
