// Command mksynth writes a synthetic TinyLlama-shaped checkpoint (about
// 1.1 B parameters) for memory and speed benchmarks of compress.
//
//	go run ./internal/tools/mksynth -out /tmp/tinyllama-synth -dtype bf16
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/synth"
)

func main() {
	out := flag.String("out", "", "output directory")
	dt := flag.String("dtype", "bf16", "dtype: f32, f16 or bf16")
	layers := flag.Int("layers", synth.TinyLlama.Layers, "number of layers")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mksynth: -out is required")
		os.Exit(2)
	}
	d, err := formats.ParseDType(*dt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mksynth:", err)
		os.Exit(2)
	}
	shape := synth.TinyLlama
	shape.Layers = *layers
	if err := synth.WriteLlama(*out, shape, d, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mksynth:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: %d parameters, %s\n", *out, shape.Params(), d)
}
