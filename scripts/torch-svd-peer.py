#!/usr/bin/env python3
"""PyTorch peer of the SVD stage of `vlora-convert compress --base mean --svd randomized`.

For every compound of K consecutive layers and every 2-D layer tensor, it forms the mean base and
factorizes each layer's increment W_l - base with torch.svd_lowrank(q=rank+10, niter=4) in float32,
as compress does with its default oversampling and power iterations. Tensors are read from the
safetensors file through a memory map (BF16/F16/F32) one compound at a time.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 scripts/torch-svd-peer.py DIR [-k 4] [-r 64] [--threads 2]

It prints one JSON line: read and SVD seconds, total wall and CPU seconds, peak RSS and the number
of factorized increments.
"""
import argparse
import json
import os
import re
import resource
import struct
import time

import numpy as np
import torch


def open_safetensors(path):
    """Returns {name: (dtype, shape, numpy view)} over a read-only memory map of path."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], raw[base + lo:base + hi])
    return out


def as_float32(entry):
    """Converts one stored tensor to a float32 torch tensor."""
    dtype, shape, buf = entry
    if dtype == "BF16":
        bits = buf.view(np.uint16).astype(np.uint32) << 16
        arr = bits.view(np.float32)
    elif dtype == "F16":
        arr = buf.view(np.float16).astype(np.float32)
    elif dtype == "F32":
        arr = np.array(buf.view(np.float32))
    else:
        raise ValueError(f"unsupported dtype {dtype}")
    return torch.from_numpy(arr.reshape(shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("-r", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    start = time.perf_counter()
    tensors = open_safetensors(os.path.join(args.model, "model.safetensors"))
    layer_re = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
    suffixes, layers = set(), set()
    for name, (_, shape, _) in tensors.items():
        m = layer_re.match(name)
        if m and len(shape) == 2:
            layers.add(int(m.group(1)))
            suffixes.add(m.group(2))
    nlayers = max(layers) + 1

    read_s = svd_s = 0.0
    count = 0
    for c0 in range(0, nlayers, args.k):
        group = range(c0, min(c0 + args.k, nlayers))
        for suffix in sorted(suffixes):
            t0 = time.perf_counter()
            ws = [as_float32(tensors[f"model.layers.{l}.{suffix}"]) for l in group]
            base = torch.stack(ws).mean(0)
            t1 = time.perf_counter()
            for w in ws:
                delta = w - base
                u, s, v = torch.svd_lowrank(delta, q=min(args.r + 10, *delta.shape), niter=4)
                b = u[:, :args.r] * s[:args.r].sqrt()
                a = (v[:, :args.r] * s[:args.r].sqrt()).T.contiguous()
                count += 1
            t2 = time.perf_counter()
            read_s += t1 - t0
            svd_s += t2 - t1
            del ws, base, b, a
    wall = time.perf_counter() - start
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib = ru.ru_maxrss
    print(json.dumps({"peer": "torch.svd_lowrank", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "k": args.k, "rank": args.r, "increments": count, "read_s": round(read_s, 2),
                      "svd_s": round(svd_s, 2), "wall_s": round(wall, 2),
                      "cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "peak_rss_mib": peak_kib // 1024}),
          flush=True)


if __name__ == "__main__":
    main()
