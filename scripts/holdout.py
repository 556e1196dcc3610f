"""Split a token safetensors file into a training part and a held-out part.

    python scripts/holdout.py IN.safetensors TRAIN.safetensors HELDOUT.safetensors N

HELDOUT gets the last N sequences of IN's "tokens" tensor and TRAIN the rest,
so that a model calibrated and distilled on TRAIN is evaluated on sequences
it never saw.
"""
import sys

from safetensors.numpy import load_file, save_file

src, train, held, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tokens = load_file(src)["tokens"]
if not 0 < n < len(tokens):
    sys.exit(f"holdout: {n} held-out sequences of {len(tokens)}")
save_file({"tokens": tokens[:-n].copy()}, train)
save_file({"tokens": tokens[-n:].copy()}, held)
print(f"{train}: {len(tokens) - n} sequences; {held}: {n}")
