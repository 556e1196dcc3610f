"""The student's logits equal the Go infer output on the same VLoRA file."""

import os

import numpy as np
import pytest
import torch

from helpers import GOLDEN, compress, go_cli, run
from vlora_torch import student as S
from vlora_torch import vlora_file as vf

# Float32 forward passes by two implementations agree to about 1e-6
# relative; 1e-4 leaves room for summation order in long reductions.
LOGITS_TOL = 1e-4

CASES = [
    ("llama-gqa-untied", ["-k", "2", "--rank", "4", "--base", "first"]),
    ("llama-gqa-untied", ["-k", "4", "--rank", "4", "--base", "mean", "--dtype", "int4"]),
    ("llama-gqa-untied", ["-k", "2", "--rank", "3", "--base", "mean", "--dtype", "int8", "--quant", "factors=none"]),
    ("qwen2-bias-tied", ["-k", "2", "--rank", "4", "--base", "mean", "--dtype", "f16"]),
    ("gpt2", ["-k", "2", "--rank", "4", "--base", "mean"]),
    ("gpt2", ["-k", "4", "--rank", "3", "--base", "first", "--dtype", "bf16"]),
    ("gpt2", ["-k", "2", "--rank", "4", "--base", "first", "--dtype", "int4"]),
]


@pytest.mark.parametrize("model,flags", CASES, ids=[f"{m}:{' '.join(f)}" for m, f in CASES])
def test_logits_equal_go_infer(tmp_path_factory, model, flags):
    root = tmp_path_factory.getbasetemp()
    exe = go_cli(str(root))
    out = tmp_path_factory.mktemp("vlora")
    path = compress(exe, os.path.join(GOLDEN, model), str(out), *flags)
    golden = os.path.join(GOLDEN, model, "golden.safetensors")
    ref_path = str(out / "infer.safetensors")
    run([exe, "infer", "--model", path, "--input", golden, "--out", ref_path])
    _, raw = vf.read_safetensors(ref_path)
    lt = raw["logits"]
    ref = vf.decode_float(lt.data, lt.dtype, int(np.prod(lt.shape))).reshape(lt.shape)
    _, g = vf.read_safetensors(golden)
    ids = np.frombuffer(g["input_ids"].data, dtype="<i4").reshape(g["input_ids"].shape)

    teacher = S.load_teacher(os.path.join(GOLDEN, model))
    st = S.build_student(teacher, vf.load(path))
    with torch.no_grad():
        got, _ = S.logits(st.model, torch.from_numpy(ids.astype(np.int64)))
    rel = np.linalg.norm(got.numpy() - ref) / np.linalg.norm(ref)
    assert rel <= LOGITS_TOL, f"relative logits error {rel:.3g}"


def test_shared_base_is_one_parameter(tmp_path_factory):
    exe = go_cli(str(tmp_path_factory.getbasetemp()))
    out = tmp_path_factory.mktemp("vlora")
    path = compress(exe, os.path.join(GOLDEN, "llama-gqa-untied"), str(out), "-k", "2", "--rank", "4", "--base", "mean")
    teacher = S.load_teacher(os.path.join(GOLDEN, "llama-gqa-untied"))
    st = S.build_student(teacher, vf.load(path))
    base = st.params["vlora.compounds.0.self_attn.q_proj.weight.base"]
    users = [m for m in st.model.modules() if isinstance(m, S.VLoRAWeight) and m.base is base]
    assert len(users) == 2
    names = [n for n, p in st.model.named_parameters() if p is base]
    assert len(names) == 1, "a shared base is listed once"
    # Its gradient gathers both layers' contributions.
    ids = torch.randint(0, 96, (2, 8))
    lg, _ = S.logits(st.model, ids)
    lg.square().mean().backward()
    assert base.grad is not None and base.grad.abs().sum() > 0


def test_vit_logits_equal_go_infer(tmp_path_factory):
    exe = go_cli(str(tmp_path_factory.getbasetemp()))
    out = tmp_path_factory.mktemp("vit")
    model = os.path.join(GOLDEN, "vit")
    path = compress(exe, model, str(out), "-k", "2", "--rank", "4", "--base", "mean", "--dtype", "int8")
    golden = os.path.join(model, "golden.safetensors")
    ref_path = str(out / "infer.safetensors")
    run([exe, "infer", "--model", path, "--input", golden, "--out", ref_path])
    _, raw = vf.read_safetensors(ref_path)
    lt = raw["logits"]
    ref = vf.decode_float(lt.data, lt.dtype, int(np.prod(lt.shape))).reshape(lt.shape)
    _, g = vf.read_safetensors(golden)
    px = vf.decode_float(g["pixel_values"].data, "F32", int(np.prod(g["pixel_values"].shape))).reshape(g["pixel_values"].shape)
    st = S.build_student(S.load_teacher(model), vf.load(path))
    with torch.no_grad():
        got = st.model(pixel_values=torch.from_numpy(px)).logits
    rel = np.linalg.norm(got.numpy() - ref) / np.linalg.norm(ref)
    assert rel <= LOGITS_TOL, f"relative logits error {rel:.3g}"
