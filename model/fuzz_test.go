package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// FuzzConfig pairs an arbitrary config.json with the stored weights of the
// small Llama fixture. Parsing and loading must never panic nor allocate
// what the weights do not hold; a rejected config gives an error wrapping
// formats.ErrInvalid (or ErrUnsupportedArchitecture); an accepted one must
// describe the stored model exactly, and its forward pass must give finite
// logits.
func FuzzConfig(f *testing.F) {
	dir := testenv.GoldenModel(f, "llama-gqa-untied")
	raw, err := os.ReadFile(filepath.Join(dir, formats.ConfigFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	for _, s := range []string{
		`{"architectures":["LlamaForCausalLM"],"num_hidden_layers":1000000000}`,
		`{"architectures":["LlamaForCausalLM"],"hidden_size":48,"num_hidden_layers":4,"vocab_size":1e9}`,
		`{"model_type":"llama","rope_theta":-1}`,
		`{"model_type":"gpt2","n_positions":1e9}`,
		`null`, `[]`, `{"rope_parameters":{"rope_theta":0}}`,
	} {
		f.Add([]byte(s))
	}
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ck.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := formats.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("ParseConfig error %q does not wrap ErrInvalid", err)
			}
			return
		}
		m, err := fromCheckpoint(dir, ck, cfg)
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) && !errors.Is(err, ErrUnsupportedArchitecture) {
				t.Fatalf("load error %q wraps neither ErrInvalid nor ErrUnsupportedArchitecture", err)
			}
			return
		}
		if m.Net.NumLayers() != 4 || m.Net.Hidden() != 48 {
			t.Fatalf("config accepted as %d layers of %d, the weights hold 4 of 48", m.Net.NumLayers(), m.Net.Hidden())
		}
		out, err := m.Net.Forward(&transformer.Input{Batch: 1, Seq: 3, IDs: []int{1, 2, 3}}, transformer.Options{})
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("forward error %q does not wrap ErrInvalid", err)
			}
			return
		}
		for _, v := range out.Logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("accepted config gives non-finite logits")
			}
		}
	})
}
