// Command mksynth writes a synthetic Llama-shaped checkpoint for memory and
// speed benchmarks: a named shape (default TinyLlama, about 1.1 B
// parameters), optionally with some sizes overridden.
//
//	go run ./internal/tools/mksynth -out /tmp/tinyllama-synth -dtype bf16
//	go run ./internal/tools/mksynth -out /tmp/smollm -shape smollm-135m
//	go run ./internal/tools/mksynth -out /tmp/tiny4 -layers 4
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/synth"
)

func main() {
	names := make([]string, 0, len(synth.Shapes))
	for n := range synth.Shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	out := flag.String("out", "", "output directory")
	dt := flag.String("dtype", "bf16", "dtype: f32, f16 or bf16")
	name := flag.String("shape", "tinyllama", "named shape: "+strings.Join(names, ", "))
	layers := flag.Int("layers", 0, "number of layers (0: the shape's)")
	hidden := flag.Int("hidden", 0, "hidden size (0: the shape's)")
	inter := flag.Int("intermediate", 0, "MLP intermediate size (0: the shape's)")
	heads := flag.Int("heads", 0, "attention heads (0: the shape's)")
	kvHeads := flag.Int("kv-heads", 0, "key/value heads (0: the shape's)")
	vocab := flag.Int("vocab", 0, "vocabulary size (0: the shape's)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		fail(2, "-out is required")
	}
	d, err := formats.ParseDType(*dt)
	if err != nil {
		fail(2, err.Error())
	}
	shape, ok := synth.Shapes[*name]
	if !ok {
		fail(2, fmt.Sprintf("unknown shape %q (have %s)", *name, strings.Join(names, ", ")))
	}
	for _, o := range []struct{ flag, dst *int }{
		{layers, &shape.Layers}, {hidden, &shape.Hidden}, {inter, &shape.Intermediate},
		{heads, &shape.Heads}, {kvHeads, &shape.KVHeads}, {vocab, &shape.Vocab},
	} {
		if *o.flag < 0 {
			fail(2, "sizes must be positive")
		}
		if *o.flag > 0 {
			*o.dst = *o.flag
		}
	}
	if shape.Hidden%shape.Heads != 0 || shape.Heads%shape.KVHeads != 0 {
		fail(2, fmt.Sprintf("hidden %d, heads %d and kv-heads %d do not divide", shape.Hidden, shape.Heads, shape.KVHeads))
	}
	if err := synth.WriteLlama(*out, shape, d, *seed); err != nil {
		fail(1, err.Error())
	}
	fmt.Printf("wrote %s: %d parameters, %s\n", *out, shape.Params(), d)
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, "mksynth:", msg)
	os.Exit(code)
}
