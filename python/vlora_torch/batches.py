"""The batches of each step: Go's distill.batchIndices, reproduced exactly, or a --batch-order file.

Go draws the items of step s with replacement from math/rand/v2's PCG
seeded with (seed, s+1), through Rand.IntN; a resumed run sees the same
batches. This module implements that generator (PCG-DXSM with a 128-bit
LCG state, and Lemire's multiply-shift reduction) in integer arithmetic.
"""

from __future__ import annotations

import numpy as np

M64 = (1 << 64) - 1
_MUL = (2549297995355413924 << 64) | 4865540595714422341
_INC = (6364136223846793005 << 64) | 1442695040888963407
_CHEAP = 0xDA942042E4DD58B5


class GoPCG:
    """math/rand/v2.PCG: a 128-bit LCG with the DXSM output function."""

    def __init__(self, seed1: int, seed2: int):
        self.state = ((seed1 & M64) << 64) | (seed2 & M64)

    def uint64(self) -> int:
        self.state = (self.state * _MUL + _INC) & ((1 << 128) - 1)
        hi, lo = self.state >> 64, self.state & M64
        hi ^= hi >> 32
        hi = (hi * _CHEAP) & M64
        hi ^= hi >> 48
        hi = (hi * (lo | 1)) & M64
        return hi

    def intn(self, n: int) -> int:
        """Rand.IntN(n) on a 64-bit platform."""
        if n <= 0:
            raise ValueError("intn: n must be positive")
        if n & (n - 1) == 0:
            return self.uint64() & (n - 1)
        prod = self.uint64() * n
        hi, lo = prod >> 64, prod & M64
        if lo < n:
            thresh = (-n & M64) % n
            while lo < thresh:
                prod = self.uint64() * n
                hi, lo = prod >> 64, prod & M64
        return hi


def batch_indices(seed: int, step: int, batch: int, n: int) -> list:
    """The items of 0-based step `step`, as Go's distill.batchIndices draws them."""
    rng = GoPCG(seed, step + 1)
    return [rng.intn(n) for _ in range(batch)]


def load_batch_order(path: str, steps: int, batch: int, n: int) -> np.ndarray:
    """Reads a --batch-order file: safetensors with `indices` I32 [steps, batch] (or more steps)."""
    from .vlora_file import FormatError, read_safetensors

    _, raw = read_safetensors(path)
    t = raw.get("indices")
    if t is None:
        raise FormatError(f"--batch-order {path}: no tensor named indices")
    if t.dtype not in ("I32", "I64") or len(t.shape) != 2:
        raise FormatError(f"--batch-order {path}: indices is {t.dtype}{t.shape}, want I32 [steps, batch]")
    idx = np.frombuffer(t.data, dtype="<i4" if t.dtype == "I32" else "<i8").reshape(t.shape).astype(np.int64)
    if idx.shape[0] < steps or idx.shape[1] != batch:
        raise FormatError(f"--batch-order {path}: indices has shape {list(idx.shape)}, want [{steps}, {batch}] (--steps, --batch)")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise FormatError(f"--batch-order {path}: index {int(idx.max() if idx.max() >= n else idx.min())} outside the {n} training sequences")
    return idx
