package outdir_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/internal/outdir"
)

// A run writes into Work and commits on success; the record then lists
// its files, and a second run that writes fewer removes the rest.
func Example() {
	root, _ := os.MkdirTemp("", "outdir")
	defer os.RemoveAll(root)
	dir := filepath.Join(root, "out")
	write := func(names ...string) {
		d, err := outdir.Open(dir, outdir.Options{Flag: "--out"})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer d.Close(false)
		for _, n := range names {
			os.WriteFile(filepath.Join(d.Work(), n), []byte(n), 0o644)
		}
		if err := d.Commit(); err != nil {
			fmt.Println(err)
		}
	}
	write("model.vlora.safetensors", "tokenizer.json")
	write("model.vlora.safetensors")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fmt.Println(e.Name())
	}
	// Output:
	// .vlora-convert.json
	// model.vlora.safetensors
}
