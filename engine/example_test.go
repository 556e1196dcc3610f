package engine_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/engine"
	"github.com/vlora-convert/vlora-convert/formats"
)

// The batch order file holds, row by row, the items distill.Run draws at
// each step; the engine trains on exactly these.
func ExampleWriteBatchOrder() {
	dir, _ := os.MkdirTemp("", "order")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "order.safetensors")
	if err := engine.WriteBatchOrder(path, 1, 3, 4, 100); err != nil {
		fmt.Println(err)
		return
	}
	f, _ := formats.Open(path)
	defer f.Close()
	idx, _ := f.ReadInts("indices")
	for s := 0; s < 3; s++ {
		fmt.Println(idx[4*s:4*s+4], distill.BatchIndices(1, s, 4, 100))
	}
	// Output:
	// [99 10 86 91] [99 10 86 91]
	// [76 61 78 79] [76 61 78 79]
	// [56 69 99 93] [56 69 99 93]
}
