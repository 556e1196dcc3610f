package gguf_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats/gguf"
)

// Write a GGUF file with one Q8_0 matrix and read it back.
func Example() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")
	w, err := gguf.Create(path,
		[]gguf.KV{{Key: "general.architecture", Value: "llama"}, {Key: "llama.block_count", Value: uint32(1)}},
		[]gguf.Tensor{{Name: "blk.0.attn_q.weight", Shape: []int{2, 32}, Type: gguf.Q8_0}})
	if err != nil {
		fmt.Println(err)
		return
	}
	data := make([]float32, 64)
	for i := range data {
		data[i] = float32(i%32)*8 - 121 // the scale is max|x|/127 = 1: exact
	}
	if err := w.WriteFloat32("blk.0.attn_q.weight", data); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Commit(); err != nil {
		fmt.Println(err)
		return
	}
	g, err := gguf.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	info, _ := g.Tensor("blk.0.attn_q.weight")
	back, _ := g.ReadFloat32("blk.0.attn_q.weight")
	fmt.Println(g.KV["general.architecture"], info.Shape, info.Type, info.Bytes(), "bytes")
	fmt.Printf("%.3f %.3f\n", back[0], back[31])
	// Output:
	// llama [2 32] Q8_0 68 bytes
	// -121.000 127.000
}
