package formats_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Open a Hugging Face model directory lazily: the headers are parsed and
// validated, tensors are read only when asked for.
func ExampleOpenCheckpoint() {
	ck, err := formats.OpenCheckpoint("../testdata/golden/llama-gqa-untied")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ck.Close()
	fmt.Println(ck.Config.Architecture(), len(ck.Names()), "tensors")
	ti, _ := ck.Info("model.layers.0.self_attn.k_proj.weight")
	fmt.Println(ti.DType, ti.Shape)
	w, err := ck.ReadFloat32("model.layers.0.self_attn.k_proj.weight")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(w), "values")
	// Output:
	// LlamaForCausalLM 39 tensors
	// F32 [16 48]
	// 768 values
}

// Write a safetensors file: the tensors are declared up front, written in
// order and committed atomically (temporary file and rename).
func ExampleCreate() {
	dir, err := os.MkdirTemp("", "formats-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "t.safetensors")
	w, err := formats.Create(path, map[string]string{"format": "pt"}, []formats.TensorSpec{
		{Name: "x", DType: formats.BF16, Shape: []int{2, 2}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := w.WriteFloat32("x", []float32{1, 2.5, -3, 0.1}); err != nil {
		w.Abort()
		fmt.Println(err)
		return
	}
	if err := w.Commit(); err != nil {
		fmt.Println(err)
		return
	}
	f, err := formats.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	x, _ := f.ReadFloat32("x")
	fmt.Println(f.Metadata()["format"], x)
	// Output:
	// pt [1 2.5 -3 0.100097656]
}
