// Package transformer runs Hugging Face transformer checkpoints in float32:
// a batched forward pass for inference and a training forward/backward pass
// that returns the gradient of a loss with respect to every dense parameter,
// by its Hugging Face tensor name.
//
// Architectures are described as data. Each supported Hugging Face
// architecture (config.architectures[0], or model_type when that is absent)
// has a builder that maps its config fields and tensor names onto a Spec made
// of a few block kinds: embeddings, normalisations (RMSNorm, LayerNorm),
// attention (causal or bidirectional, GQA, optional RoPE and biases, fused or
// separate projections), MLPs (SwiGLU or a dense activation) and heads (LM
// head, possibly tied; BERT pooler; ViT classifier). A single engine executes
// every Spec, so the forward and backward passes are written once.
//
// Parameters come through the Weights interface, so a dense checkpoint and a
// compressed model that materialises dense weights by their original names
// load alike. The loaded parameters live in Model.Params, keyed by name, and
// may be overwritten in place (or through Model.SetParam) between passes.
//
// Model.Forward runs inference. A Trainer runs training steps: its Forward
// keeps the activations, and its Backward takes the gradient of a loss with
// respect to the outputs (logits, and optionally any hidden state) and
// returns the gradient with respect to every parameter by name. loss.go
// provides the losses a distillation loop needs: KL(teacher ‖ student) with
// temperature, log-softmax and next-token cross-entropy, each with its
// gradient.
//
// A Decoder (Model.NewDecoder) runs a causal LM one position at a time,
// keeping every block's keys and values, for sampling: each Step costs one
// token per sequence plus attention over the cached positions, and gives
// the logits Forward gives at that position.
//
// All matrix products go through internal/kernels.Sgemm. Attention is fused
// per (sequence, head): scores are computed for blocks of query rows, only up
// to the causal limit, with an exact row softmax, and the probabilities are
// never stored; the backward pass recomputes them from the saved row
// log-sum-exp values.
package transformer
