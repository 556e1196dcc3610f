"""PyTorch distillation engine for VLoRA files.

The Go tool vlora-convert writes a VLoRA file (README "File format"); this
package reads it into a Hugging Face student whose compressed weights are
VLoRA parameters (shared compound bases, low-rank factors, dense deltas),
distills it towards the original model with the same recipe as the Go
distill package, on one process or many (torchrun: DDP or FSDP), and writes
the result back in the same format.
"""

__all__ = ["vlora_file", "student", "distill"]
