"""The distillation engine: Go parity, multi-process equivalence, resume, variants and bad input."""

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import GOLDEN, PYTHON_DIR, compress, env, go_cli, run, tokens_file
from vlora_torch import distill
from vlora_torch import vlora_file as vf

LLAMA = os.path.join(GOLDEN, "llama-gqa-untied")

# Two float32 implementations of the same 20 steps drift apart by summation
# order only: about 1e-5 relative per step here; the contract allows 1%.
GO_PARITY_TOL = 0.01
# One process against two with the same global batch: the same sums in a
# different order, about 1e-7 relative; 1e-4 is the contract.
MULTI_TOL = 1e-4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    exe = go_cli(str(tmp_path_factory.getbasetemp()))
    init = compress(exe, LLAMA, str(root / "init"), "-k", "2", "--rank", "4", "--base", "first")
    rng = np.random.default_rng(1)
    train = tokens_file(str(root / "train.safetensors"), rng.integers(0, 96, (40, 16)))
    ev = tokens_file(str(root / "eval.safetensors"), rng.integers(0, 96, (8, 16)))
    return {"root": root, "exe": exe, "init": init, "train": train, "eval": ev}


def base_args(s, out, steps=6, *extra):
    return [s["init"], "--original", LLAMA, "--out", out, "--data", s["train"], "--eval-data", s["eval"],
            "--steps", str(steps), "--batch", "4", "--checkpoint-every", "0", "--progress-json", *extra]


def engine(capsys, args):
    """Runs the engine in this process; returns its progress events."""
    capsys.readouterr()
    assert distill.main(args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def torchrun(args, n=2):
    e = env()
    e["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
           "-m", "vlora_torch.distill", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def steps_of(events):
    return [e for e in events if e["event"] == "step"]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def assert_same_file(a, b, tol):
    fa, fb = vf.load(a), vf.load(b)
    assert fa.tensors.keys() == fb.tensors.keys()
    for k in fa.tensors:
        assert rel(fa.tensors[k], fb.tensors[k]) <= tol, k


def test_go_parity_20_steps(setup, capsys):
    s = setup
    go_out = str(s["root"] / "go")
    run([s["exe"], "distill", s["init"], "--original", LLAMA, "--out", go_out, "--steps", "20", "--batch", "4",
         "--data", s["train"], "--eval-data", s["eval"], "--checkpoint-every", "0", "-q"])
    with open(os.path.join(go_out, "model.vlora.loss.csv")) as f:
        go = [float(r["loss"]) for r in csv.DictReader(f) if r["stage"] == "global"]
    out = str(s["root"] / "py20.safetensors")
    ev = engine(capsys, base_args(s, out, 20))
    py = [e["loss"] for e in steps_of(ev)]
    assert len(go) == len(py) == 20
    for i, (g, p) in enumerate(zip(go, py)):
        assert abs(g - p) <= GO_PARITY_TOL * abs(g), f"step {i + 1}: Go {g}, engine {p}"
    rec_go = vf.load(go_out).manifest.obj["distill"]
    rec_py = vf.load(out).manifest.obj["distill"]
    assert rec_py["engine"] == "torch"
    for k in ("steps", "tokens", "data_sha256", "seed", "lr", "batch", "seq_len", "train", "temperature", "hidden_weight"):
        assert rec_py[k] == rec_go[k], k
    assert abs(rec_py["eval_kl"] - rec_go["eval_kl"]) <= 0.02 * rec_go["eval_kl"]


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_processes_equal_one(setup, capsys, fsdp):
    s = setup
    extra = ["--fsdp"] if fsdp else []
    one = str(s["root"] / f"one{fsdp}.safetensors")
    two = str(s["root"] / f"two{fsdp}.safetensors")
    ev1 = engine(capsys, base_args(s, one, 6))
    ev2 = torchrun(base_args(s, two, 6, *extra))
    assert [e for e in ev2 if e["event"] == "start"][0]["world_size"] == 2
    l1 = [e["loss"] for e in steps_of(ev1)]
    l2 = [e["loss"] for e in steps_of(ev2)]
    assert len(l1) == len(l2) == 6
    for a, b in zip(l1, l2):
        assert abs(a - b) <= MULTI_TOL * abs(a)
    assert_same_file(two, one, MULTI_TOL)


def test_resume_gives_the_same_file(setup, capsys):
    s = setup
    full = str(s["root"] / "full.safetensors")
    args = lambda out: base_args(s, out, 30)[:-3] + ["--checkpoint-every", "5", "--progress-json"]  # noqa: E731
    engine(capsys, args(full))
    cut = str(s["root"] / "cut.safetensors")
    e = env()
    e["OMP_NUM_THREADS"] = "1"
    p = subprocess.Popen([sys.executable, "-m", "vlora_torch.distill", *args(cut)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env=e)
    killed_at = None
    for line in p.stdout:
        ev = json.loads(line)
        if ev["event"] == "step" and ev["step"] >= 6:
            p.send_signal(signal.SIGKILL)
            killed_at = ev["step"]
            break
    p.wait()
    assert killed_at is not None and killed_at < 30, "the run was not interrupted"
    assert not os.path.exists(cut), "an interrupted run left an output"
    assert os.path.exists(cut + ".ckpt")
    ev = engine(capsys, args(cut) + ["--resume"])
    start = [x for x in ev if x["event"] == "start"][0]["start_step"]
    assert start in (5, 10, 15, 20, 25) and start <= killed_at
    with open(full, "rb") as a, open(cut, "rb") as b:
        assert a.read() == b.read(), "the resumed run wrote a different file"
    assert not os.path.exists(cut + ".ckpt")


def test_grad_accum_and_activation_checkpointing_change_nothing(setup, capsys):
    s = setup
    ref = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "a.safetensors"), 4)))]
    acc = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "b.safetensors"), 4,
                                                                "--grad-accum", "2", "--activation-checkpointing")))]
    for a, b in zip(ref, acc):
        assert abs(a - b) <= 1e-5 * abs(a)


def test_bf16_autocast_follows_float32(setup, capsys):
    s = setup
    ref = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "f.safetensors"), 4)))]
    bf = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "h.safetensors"), 4, "--dtype", "bf16")))]
    # bf16 keeps 8 bits of mantissa: logits and hidden states within about 1%.
    for a, b in zip(ref, bf):
        assert np.isfinite(b) and abs(a - b) <= 0.05 * abs(a)
    f = vf.load(str(s["root"] / "h.safetensors"))
    assert f.manifest.dtype == "F32"


def test_augment_adds_teacher_continuations(setup, capsys):
    s = setup
    out = str(s["root"] / "aug.safetensors")
    ev = engine(capsys, base_args(s, out, 2, "--augment", "6", "--augment-prefix", "4"))
    assert len(steps_of(ev)) == 2
    rec = vf.load(out).manifest.obj["distill"]
    assert "6 continuations by the original model" in rec["data"]


def test_batch_order_file_is_used(setup, capsys):
    s = setup
    from vlora_torch.batches import batch_indices

    order = np.array([batch_indices(0, i, 4, 40) for i in range(3)], dtype="<i4")
    path = str(s["root"] / "order.safetensors")
    vf.write_safetensors(path, None, [("indices", "I32", [3, 4], order.tobytes())])
    a = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "o1.safetensors"), 3)))]
    b = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "o2.safetensors"), 3, "--batch-order", path)))]
    assert a == b
    rev = np.ascontiguousarray(order[:, ::-1] * 0 + 7, dtype="<i4")
    vf.write_safetensors(path, None, [("indices", "I32", [3, 4], rev.tobytes())])
    c = [e["loss"] for e in steps_of(engine(capsys, base_args(s, str(s["root"] / "o3.safetensors"), 3, "--batch-order", path)))]
    assert c[0] != a[0]


def bad_cases(s):
    root = s["root"]
    oov = tokens_file(str(root / "oov.safetensors"), np.full((4, 16), 500))
    long = tokens_file(str(root / "long.safetensors"), np.zeros((4, 65)))
    return {
        "missing init": (["/nonexistent.vlora"] + base_args(s, str(root / "x.safetensors"))[1:], "INIT_FILE"),
        "not a VLoRA file": ([os.path.join(LLAMA, "model.safetensors")] + base_args(s, str(root / "x.safetensors"))[1:], "not a VLoRA file"),
        "bad train set": (base_args(s, str(root / "x.safetensors"), 2, "--train", "heads"), "--train"),
        "batch out of range": (base_args(s, str(root / "x.safetensors"), 2, "--batch", "0"), "--batch"),
        "token outside vocabulary": (base_args(s, str(root / "x.safetensors"), 2, "--data", oov), "outside the vocabulary"),
        "unknown flag": (base_args(s, str(root / "x.safetensors"), 2, "--bogus"), "--bogus"),
        "sequences too long": (base_args(s, str(root / "x.safetensors"), 2, "--data", long), "64 positions"),
    }


@pytest.mark.parametrize("case", ["missing init", "not a VLoRA file", "bad train set", "batch out of range",
                                  "token outside vocabulary", "unknown flag", "sequences too long"])
def test_bad_input_exits_2_with_one_line(setup, capsys, case):
    args, needle = bad_cases(setup)[case]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        distill.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vlora_torch: ") and needle in err[0], err
    assert not os.path.exists(str(setup["root"] / "x.safetensors"))


def test_module_runs_as_a_program(setup):
    """`python -m vlora_torch.distill` with bad input: exit 2, one line (the entry point the Go side launches)."""
    e = env()
    r = subprocess.run([sys.executable, "-m", "vlora_torch.distill", "/nonexistent", "--original", LLAMA, "--out",
                        "/tmp/x.safetensors", "--data", setup["train"]], capture_output=True, text=True, env=e, cwd=PYTHON_DIR)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("vlora_torch: INIT_FILE /nonexistent")


def test_go_parity_vit(tmp_path, capsys):
    """Image classifiers: class logits on pixel_values, an image counting as one token."""
    exe = go_cli(str(tmp_path.parent))
    model = os.path.join(GOLDEN, "vit")
    init = compress(exe, model, str(tmp_path / "init"), "-k", "2", "--rank", "4", "--base", "mean")
    rng = np.random.default_rng(2)
    px = rng.standard_normal((16, 3, 16, 16)).astype("<f4")
    data = str(tmp_path / "px.safetensors")
    vf.write_safetensors(data, None, [("pixel_values", "F32", [16, 3, 16, 16], px.tobytes())])
    go_out = str(tmp_path / "go")
    run([exe, "distill", init, "--original", model, "--out", go_out, "--steps", "10", "--batch", "4",
         "--data", data, "--eval-data", data, "--checkpoint-every", "0", "-q"])
    with open(os.path.join(go_out, "model.vlora.loss.csv")) as f:
        go = [float(r["loss"]) for r in csv.DictReader(f) if r["stage"] == "global"]
    out = str(tmp_path / "py.safetensors")
    ev = engine(capsys, [init, "--original", model, "--out", out, "--data", data, "--eval-data", data, "--steps", "10",
                         "--batch", "4", "--checkpoint-every", "0", "--progress-json"])
    py = [e["loss"] for e in steps_of(ev)]
    assert len(go) == len(py) == 10
    for g, p in zip(go, py):
        assert abs(g - p) <= GO_PARITY_TOL * abs(g)
    rec = vf.load(out).manifest.obj["distill"]
    assert rec["seq_len"] == 0 and rec["tokens"] == 40
    assert abs(rec["eval_kl"] - vf.load(go_out).manifest.obj["distill"]["eval_kl"]) <= 0.02 * rec["eval_kl"]
