"""Fake quantization in torch, bit for bit as Go's quant.FakeQuant.

The forward value of a quantized tensor is dequantize(quantize(master)),
scales recomputed from the float master weights at every call; gradients
pass to the master weights unchanged (straight-through estimator), as the Go
distill package's fakeQuant does.
"""

from __future__ import annotations

import torch

from .vlora_file import Scheme, matrix


def _f16_round(sc: torch.Tensor):
    """Rounds float32 scales to F16 as Go's groupScale: nearest, away from zero in the subnormal range, clamped."""
    sc = sc.clamp(-65504.0, 65504.0)
    h = sc.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
    f = (h.to(torch.int16)).view(torch.float16).to(torch.float32)
    bump = ((h & 0x7C00) == 0) & (f.abs() < sc.abs())
    h = torch.where(bump, h + 1, h)
    f = (h.to(torch.int16)).view(torch.float16).to(torch.float32)
    return f


def fake_quant_value(x: torch.Tensor, s: Scheme) -> torch.Tensor:
    """Returns dequantize(quantize(x)) for the row-major tensor x (float32), without gradient."""
    with torch.no_grad():
        shape = x.shape
        rows, cols = matrix(list(shape))
        flat = x.detach().reshape(-1).to(torch.float32)
        n = flat.numel()
        if n == 0:
            return x.detach().clone()
        g = s.group_len(cols)
        pad = (-n) % g
        grp = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, g)
        amax = grp.abs().amax(dim=1)
        if s.full:
            first = (grp.abs() == amax[:, None]).to(torch.int8).argmax(dim=1)
            v = grp.gather(1, first[:, None])[:, 0]
            sc = v / float(-(1 << (s.bits - 1)))
        else:
            sc = amax / float(s.max_code)
        f = _f16_round(sc)
        inv = torch.where(f == 0, torch.zeros_like(f), 1.0 / torch.where(f == 0, torch.ones_like(f), f))
        lo, hi = s.code_range()
        t = (grp * inv[:, None]).clamp(lo, hi)
        out = torch.round(t) * f[:, None]
        bad = ~torch.isfinite(amax)
        if bad.any():
            out[bad] = float("nan")
        return out.reshape(-1)[:n].reshape(shape).to(x.dtype)


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, q):
        return q

    @staticmethod
    def backward(ctx, g):
        return g, None


def fake_quant_ste(x: torch.Tensor, s: Scheme | None) -> torch.Tensor:
    """The forward value fake_quant_value(x), exactly, with the gradient of x (straight through)."""
    if s is None:
        return x
    q = fake_quant_value(x, s)
    if not x.requires_grad:
        return q
    return _STE.apply(x, q)
