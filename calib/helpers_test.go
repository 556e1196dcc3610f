package calib

import (
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
)

const tinyLlama = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,
"intermediate_size":12,"num_attention_heads":2,"num_key_value_heads":1,"num_hidden_layers":2,
"vocab_size":11,"rms_norm_eps":1e-5,"max_position_embeddings":16,"rope_theta":10000}`

// tinyModel returns a two-layer Llama with random weights (standard
// deviation 0.3) and batches of batch × seq random tokens (seq ≤ 16).
func tinyModel(t *testing.T, rng *rand.Rand, batches, batch, seq int) (*transformer.Model, []*transformer.Input) {
	t.Helper()
	cfg, err := formats.ParseConfig([]byte(tinyLlama))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := transformer.BuildSpec(cfg, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	infos, err := spec.Parameters()
	if err != nil {
		t.Fatal(err)
	}
	w := transformer.MapWeights{}
	for _, pi := range infos {
		n := 1
		for _, d := range pi.Shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.3)
		}
		w[pi.Name] = &transformer.Param{Name: pi.Name, Shape: pi.Shape, Data: data}
	}
	m, err := transformer.LoadSpec(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []*transformer.Input
	for range batches {
		ids := make([]int, batch*seq)
		for i := range ids {
			ids[i] = rng.IntN(11)
		}
		inputs = append(inputs, &transformer.Input{Batch: batch, Seq: seq, IDs: ids})
	}
	return m, inputs
}
