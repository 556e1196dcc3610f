package transformer_test

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/transformer"
)

// A distillation step: the teacher's logits are the target of the student's
// KL loss, whose gradient flows back to every dense student parameter.
func Example_distillationStep() {
	teacher, err := transformer.LoadCheckpoint("path/to/teacher")
	if err != nil {
		fmt.Println(err)
		return
	}
	student, err := transformer.LoadCheckpoint("path/to/student")
	if err != nil {
		fmt.Println(err)
		return
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
	fmt.Println(kl, len(grads["model.layers.0.mlp.down_proj.weight"].Data))
}
