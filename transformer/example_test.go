package transformer_test

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// load loads a Hugging Face model directory with the transformer package
// alone (package model does the same for dense and VLoRA models).
func load(dir string) (*transformer.Model, error) {
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return transformer.Load(ck.Config, transformer.CheckpointWeights{Checkpoint: ck})
}

// A distillation step: the teacher's logits are the target of the student's
// KL loss, whose gradient flows back to every dense student parameter. The
// student here is the teacher with one weight matrix scaled, so the KL is
// small but not zero.
func Example_distillationStep() {
	const dir = "../testdata/golden/llama-gqa-untied"
	teacher, err := load(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	student, err := load(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	const name = "model.layers.0.mlp.down_proj.weight"
	for i := range student.Params[name].Data {
		student.Params[name].Data[i] *= 1.5
	}
	in := &transformer.Input{Batch: 1, Seq: 4, IDs: []int{10, 20, 30, 40}}
	tout, err := teacher.Forward(in, transformer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := student.NewTrainer()
	sout, err := tr.Forward(in, transformer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	vocab := sout.LogitsShape[2]
	dlogits := make([]float32, len(sout.Logits))
	kl, err := transformer.KLDiv(tout.Logits, sout.Logits, vocab, 1, dlogits)
	if err != nil {
		fmt.Println(err)
		return
	}
	grads, err := tr.Backward(&transformer.OutputGrad{Logits: dlogits})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("KL > 0: %v, gradient values for %s: %d\n", kl > 0, name, len(grads[name].Data))
	// Output:
	// KL > 0: true, gradient values for model.layers.0.mlp.down_proj.weight: 3840
}
