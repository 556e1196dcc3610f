"""The VLoRA file reader and writer against files written by the Go tool."""

import os
import struct

import numpy as np
import pytest
import torch

from helpers import GOLDEN, compress, go_cli, run
from vlora_torch import vlora_file as vf
from vlora_torch.fakequant import fake_quant_value

CASES = {
    "f32-first": ("llama-gqa-untied", ["-k", "2", "--rank", "4", "--base", "first"]),
    "bf16-mean": ("gpt2", ["-k", "2", "--rank", "4", "--base", "mean", "--dtype", "bf16"]),
    "f16-mean": ("qwen2-bias-tied", ["-k", "4", "--rank", "3", "--base", "mean", "--dtype", "f16"]),
    "int4-full": ("llama-gqa-untied", ["-k", "4", "--rank", "4", "--base", "mean", "--dtype", "int4"]),
    "mixed": ("gpt2", ["-k", "2", "--rank", "4", "--base", "first", "--dtype", "int8", "--quant", "factors=int3,passthrough=none"]),
}


def body(path):
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    return b[8 + n:]


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip(tmp_path_factory, case):
    model, flags = CASES[case]
    exe = go_cli(str(tmp_path_factory.getbasetemp()))
    d = tmp_path_factory.mktemp(case)
    src = compress(exe, os.path.join(GOLDEN, model), str(d / "go"), *flags)
    a = vf.load(src)
    out = str(d / "py.safetensors")
    vf.save(a, out)
    b = vf.load(out)
    assert a.manifest.obj == b.manifest.obj
    assert a.tensors.keys() == b.tensors.keys()
    for k in a.tensors:
        assert np.array_equal(a.tensors[k], b.tensors[k]), k
    # Same names, order, dtypes and encoding as the Go writer: the data bytes are equal.
    assert body(src) == body(out)
    # The Go tool reads what this module writes.
    r = run([exe, "inspect", out])
    assert "layer stack" in r.stdout


def test_quantize_matches_fake_quant_on_odd_shapes():
    rng = np.random.default_rng(3)
    for scheme in ("int4/g32", "int4/g32/full", "int8/row", "int3/g7", "int2/g32/full", "int5/row/full"):
        s = vf.Scheme.parse(scheme)
        for rows, cols in ((5, 13), (1, 1), (7, 64), (3, 33)):
            x = (rng.standard_normal((rows, cols)) * rng.choice([1e-6, 1.0, 300.0])).astype(np.float32)
            x[0, 0] = 0
            codes, h = vf.quantize(x, rows, cols, s)
            assert codes.size == s.code_bytes(rows, cols) and h.size == s.num_groups(rows, cols)
            deq = vf.dequantize(codes, h, rows, cols, s).reshape(rows, cols)
            fq = fake_quant_value(torch.from_numpy(x), s).numpy()
            assert np.array_equal(deq, fq), (scheme, rows, cols)
            # Quantized values are fixed points: storing them again gives the
            # same values (in the F16 subnormal range possibly by other codes).
            c2, h2 = vf.quantize(deq, rows, cols, s)
            assert np.array_equal(vf.dequantize(c2, h2, rows, cols, s).reshape(rows, cols), deq)


def test_bad_files_are_format_errors(tmp_path):
    good = os.path.join(GOLDEN, "llama-gqa-untied", "model.safetensors")
    with pytest.raises(vf.FormatError, match="not a VLoRA file"):
        vf.load(good)
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x10\x00")
    with pytest.raises(vf.FormatError, match="shorter than 8 bytes"):
        vf.load(str(short))
    trunc = tmp_path / "trunc.safetensors"
    with open(good, "rb") as f:
        trunc.write_bytes(f.read()[:5000])
    with pytest.raises(vf.FormatError, match="data offsets"):
        vf.read_safetensors(str(trunc))
