"""Shared test helpers: the Go CLI, built once, and fixtures made with it."""

import os
import shutil
import subprocess

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "testdata", "golden")
SHARED = os.path.join(os.path.dirname(REPO), "shared")
PYTHON_DIR = os.path.join(REPO, "python")


def go_cli(tmp_root: str) -> str:
    """Builds cmd/vlora-convert into tmp_root once and returns its path."""
    exe = os.path.join(tmp_root, "vlora-convert")
    if not os.path.exists(exe):
        go = shutil.which("go")
        assert go, "the Go toolchain is needed to produce reference outputs (go on PATH)"
        subprocess.run([go, "build", "-o", exe, "./cmd/vlora-convert"], cwd=REPO, check=True)
    return exe


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}): {r.stderr[-2000:]}"
    return r


def compress(exe, model_dir, out_dir, *flags):
    run([exe, "compress", "--model", model_dir, "--out", out_dir, "--distill-steps", "0", "-q", *flags])
    return os.path.join(out_dir, "model.vlora.safetensors")


def tokens_file(path, arr):
    """Writes a token safetensors file with tensor tokens I32 [N, T]."""
    from vlora_torch import vlora_file as vf

    arr = np.ascontiguousarray(arr, dtype="<i4")
    vf.write_safetensors(path, None, [("tokens", "I32", list(arr.shape), arr.tobytes())])
    return path


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PYTHON_DIR + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("TRANSFORMERS_VERBOSITY", "error")
    e.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return e
