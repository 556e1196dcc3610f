"""Token data: safetensors token sets as Go's dataset.Load reads them, and teacher continuations (--augment)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .vlora_file import FormatError, read_safetensors

_INTS = {"I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8"}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_record(path: str) -> tuple[str, str]:
    """The source and SHA-256 a distillation record names for the token file at path: those the Go
    launcher wrote into its metadata (vlora.source, vlora.sha256: the data file the user named, before
    it was encoded) when present, else the file's own path and digest."""
    meta, _ = read_safetensors(path)
    if meta.get("vlora.source"):
        return meta["vlora.source"], meta.get("vlora.sha256", "")
    return path, sha256_file(path)


def load_tokens(path: str, seq_len: int = 0, samples: int = 0, vocab: int = 0, flag="--data", images=False) -> np.ndarray:
    """Reads tokens (or input_ids) int [N, T]; keeps the first samples rows (0: all), truncates to seq_len (0: all).

    With images, reads pixel_values float [N, C, H, W] instead (image models).
    """
    _, raw = read_safetensors(path)
    if images:
        t = raw.get("pixel_values")
        if t is None or len(t.shape) != 4 or t.dtype not in ("F32", "F16", "BF16", "F64"):
            raise FormatError(f"{flag} {path}: want a float pixel_values tensor [N, C, H, W] for an image model")
        from .vlora_file import decode_float

        px = decode_float(t.data, t.dtype, int(np.prod(t.shape))).reshape(t.shape)
        if px.shape[0] == 0:
            raise FormatError(f"{flag} {path}: no images")
        return np.ascontiguousarray(px[:samples] if samples > 0 else px)
    t = raw.get("tokens") or raw.get("input_ids")
    if t is None:
        raise FormatError(f"{flag} {path}: no tensor named tokens or input_ids")
    if len(t.shape) != 2 or t.dtype not in _INTS:
        raise FormatError(f"{flag} {path}: {'tokens' if 'tokens' in raw else 'input_ids'} is {t.dtype}{t.shape}, want an integer [N, T] tensor")
    ids = np.frombuffer(t.data, dtype=_INTS[t.dtype]).reshape(t.shape).astype(np.int64)
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise FormatError(f"{flag} {path}: no sequences ({list(ids.shape)})")
    if samples > 0:
        ids = ids[:samples]
    if 0 < seq_len < ids.shape[1]:
        ids = ids[:, :seq_len]
    if vocab > 0 and ids.size and (ids.min() < 0 or ids.max() >= vocab):
        bad = int(ids.max() if ids.max() >= vocab else ids.min())
        pos = int(np.nonzero(ids.reshape(-1) == bad)[0][0])
        raise FormatError(f"{flag} {path}: token {bad} at position {pos} outside the vocabulary [0, {vocab})")
    return np.ascontiguousarray(ids)


@torch.no_grad()
def continuations(teacher, ids: np.ndarray, n: int, keep: int, seed: int, device, rank=0, world=1, chunk=64) -> np.ndarray:
    """n sequences of ids' length: the first keep tokens of a sequence of ids, then the teacher's own
    continuation sampled at temperature 1 on device.

    Sources are taken in a seeded random order, cycling when n exceeds the
    number of sequences. Each rank samples its share; the shares are gathered
    so that every rank returns the same array.
    """
    N, T = ids.shape
    rng = np.random.default_rng([seed, 0xC0417])
    order = np.concatenate([rng.permutation(N) for _ in range((n + N - 1) // N)])[:n]
    per = (n + world - 1) // world
    mine = order[rank * per:(rank + 1) * per]
    # Every rank samples exactly per sequences (sharded models run their forward passes together).
    mine = np.concatenate([mine, np.full(per - len(mine), order[0], dtype=mine.dtype)])
    out = np.zeros((per, T), dtype=np.int64)
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1000003 + rank) & ((1 << 63) - 1))
    for c in range(0, len(mine), chunk):
        src = mine[c:c + chunk]
        x = torch.from_numpy(ids[src, :keep]).to(device)
        past = None
        cur = x
        seq = [x]
        for _ in range(T - keep):
            o = teacher(input_ids=cur, past_key_values=past, use_cache=True)
            past = o.past_key_values
            p = torch.softmax(o.logits[:, -1, :].float(), dim=-1)
            nxt = torch.multinomial(p, 1, generator=gen)
            seq.append(nxt)
            cur = nxt
        out[c:c + len(src)] = torch.cat(seq, dim=1).cpu().numpy()
    if world > 1:
        import torch.distributed as dist

        t = torch.from_numpy(out).to(device)
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        out = torch.cat(parts).cpu().numpy()
    return np.ascontiguousarray(out[:n])
