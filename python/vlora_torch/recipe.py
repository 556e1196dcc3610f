"""The distillation recipe's pieces, as Go's distill package defines them: schedule, loss terms, optimizer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def schedule(s: int, steps: int, warmup: int, min_ratio: float, decay: str) -> float:
    """Learning-rate multiplier at 0-based step s: linear warm-up times a cosine or linear decay to min_ratio."""
    x = s / steps
    g = 0.5 * (1 + math.cos(math.pi * x))
    if decay == "linear":
        g = 1 - x
    f = min_ratio + (1 - min_ratio) * g
    if warmup > 0:
        f *= min(1.0, (s + 1) / warmup)
    return f


def hidden_weight(s: int, steps: int, w: float, decay: bool) -> float:
    """The hidden-state weight at step s: w, or w along a cosine to zero with --hidden-decay."""
    if not decay:
        return w
    return w * schedule(s, steps, 0, 0, "cosine")


def kl_rows_sum(teacher_logits: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Sum over rows of KL(softmax(t/τ) ‖ softmax(s/τ)), in float32 (Go's KLDiv times its row count)."""
    v = student_logits.shape[-1]
    s = student_logits.float().reshape(-1, v)
    t = teacher_logits.float().reshape(-1, v)
    if tau != 1:
        s, t = s / tau, t / tau
    lps = F.log_softmax(s, dim=-1)
    lpt = F.log_softmax(t, dim=-1)
    return F.kl_div(lps, lpt, log_target=True, reduction="sum")


def sq_norm(x: torch.Tensor) -> torch.Tensor:
    return x.float().pow(2).sum(dtype=torch.float32)


def global_clip_(params, max_norm: float) -> float:
    """Scales every gradient so that their global L2 norm is at most max_norm (0: only measures).

    Returns the norm before clipping, as Go's clipGradNorm. Gradients that are
    sharded DTensors contribute their full norm.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norms = []
    for g in grads:
        n = torch.linalg.vector_norm(g.float(), dtype=torch.float32)
        if hasattr(n, "full_tensor"):
            n = n.full_tensor()
        norms.append(n.double())
    total = float(torch.linalg.vector_norm(torch.stack(norms)))
    if max_norm > 0 and total > max_norm:
        s = max_norm / total
        for g in grads:
            g.mul_(s)
    return total
