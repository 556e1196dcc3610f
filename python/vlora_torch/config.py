"""The engine's options: the flags of Go's `vlora-convert distill`, same names, defaults and ranges."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field

from .vlora_file import FormatError

DEFAULT_LR = 2e-3
DEFAULT_QAT_LR = 5e-4
MAX_STEPS = 1 << 24


class UsageError(FormatError):
    """Invalid flags: exit code 2."""


@dataclass
class Config:
    init: str = ""
    original: str = ""
    out: str = ""
    data: str = ""
    eval_data: str = ""
    eval_samples: int = 64
    steps: int = 600
    tokens: int = 0
    batch: int = 8
    seq_len: int = 0
    lr: float = 0.0
    warmup: int = 20
    decay: str = "cosine"
    min_lr_ratio: float = 0.01
    clip: float = 1.0
    weight_decay: float = 0.0
    beta2: float = 0.999
    base_lr_scale: float = 1.0
    pass_lr_scale: float = 1.0
    train: str = "bases"
    temperature: float = 1.0
    hidden_weight: float = 10.0
    hidden_decay: bool = False
    seed: int = 0
    augment: int = 0
    augment_prefix: int = 0
    checkpoint_every: int = 50
    resume: bool = False
    # engine-only
    batch_order: str = ""
    device: str = "auto"
    dtype: str = "float32"
    fsdp: bool = False
    grad_accum: int = 1
    activation_checkpointing: bool = False
    progress_json: bool = False
    # set by parse: which flags were given
    given: set = field(default_factory=set)

    @property
    def checkpoint_path(self) -> str:
        return self.out + ".ckpt"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vlora_torch.distill", add_help=True,
                description="Distill a VLoRA file towards its original model (the recipe of vlora-convert distill).")
    a = p.add_argument
    a("init", metavar="INIT_FILE", help="the VLoRA file to start from")
    a("--original", required=True, help="original Hugging Face model directory")
    a("--out", required=True, help="output VLoRA file")
    a("--data", default="", help="training tokens: safetensors with tokens/input_ids int [N, T]")
    a("--eval-data", default="", help="evaluation tokens (held out)")
    a("--eval-samples", type=int, default=64)
    a("--steps", type=int, default=600)
    a("--tokens", type=int, default=0)
    a("--batch", type=int, default=8, help="global batch: sequences per step over all ranks")
    a("--seq-len", type=int, default=0)
    a("--lr", type=float, default=0.0)
    a("--warmup", type=int, default=20)
    a("--decay", default="cosine")
    a("--min-lr-ratio", type=float, default=0.01)
    a("--clip", type=float, default=1.0)
    a("--weight-decay", type=float, default=0.0)
    a("--beta2", type=float, default=0.999)
    a("--base-lr-scale", type=float, default=1.0)
    a("--pass-lr-scale", type=float, default=1.0)
    a("--train", default="bases")
    a("--temperature", type=float, default=1.0)
    a("--hidden-weight", type=float, default=10.0)
    a("--hidden-decay", action="store_true")
    a("--seed", type=int, default=0)
    a("--augment", type=int, default=0)
    a("--augment-prefix", type=int, default=0)
    a("--checkpoint-every", type=int, default=50)
    a("--resume", action="store_true")
    a("--batch-order", default="")
    a("--device", default="auto")
    a("--dtype", default="float32")
    a("--fsdp", action="store_true")
    a("--grad-accum", type=int, default=1)
    a("--activation-checkpointing", action="store_true")
    a("--progress-json", action="store_true")
    return p


def parse(argv) -> Config:
    ns = _parser().parse_args(argv)
    cfg = Config(**{k: v for k, v in vars(ns).items()})
    given = set()
    for tok in argv:
        if tok.startswith("--"):
            given.add(tok[2:].split("=", 1)[0].replace("-", "_"))
    cfg.given = given
    validate(cfg)
    return cfg


def _int_range(name, v, lo, hi):
    if not lo <= v <= hi:
        raise UsageError(f"--{name} {v} out of range [{lo}, {hi}]")


def _float_range(name, v, lo, hi, open_lo):
    if math.isnan(v) or v > hi or v < lo or (open_lo and v == lo):
        raise UsageError(f"--{name} {v:g} out of range {'(' if open_lo else '['}{lo:g}, {hi:g}]")


def validate(c: Config):
    """Checks every flag against the range Go's distill command documents."""
    if c.train not in ("factors", "bases", "all"):
        raise UsageError(f"--train: unknown trainable set {c.train!r} (want factors, bases or all)")
    if c.decay not in ("cosine", "linear"):
        raise UsageError(f"--decay: unknown learning-rate decay {c.decay!r} (want cosine or linear)")
    if c.device not in ("cpu", "cuda", "auto"):
        raise UsageError(f"--device {c.device!r} (want cpu, cuda or auto)")
    if c.dtype not in ("float32", "bf16"):
        raise UsageError(f"--dtype {c.dtype!r} (want float32 or bf16)")
    if "tokens" in c.given and "steps" in c.given:
        raise UsageError("--steps and --tokens are exclusive")
    _int_range("steps", c.steps, 0, MAX_STEPS)
    _int_range("batch", c.batch, 1, 65536)
    _int_range("seq-len", c.seq_len, 0, 65536)
    _int_range("eval-samples", c.eval_samples, 0, 1 << 20)
    _int_range("warmup", c.warmup, 0, MAX_STEPS)
    _int_range("checkpoint-every", c.checkpoint_every, 0, MAX_STEPS)
    _int_range("tokens", c.tokens, 0, 1 << 40)
    _int_range("augment", c.augment, 0, 1 << 20)
    _int_range("augment-prefix", c.augment_prefix, 0, 65535)
    _int_range("grad-accum", c.grad_accum, 1, 65536)
    _int_range("seed", c.seed, 0, (1 << 64) - 1)
    _float_range("lr", c.lr, 0, 10, False)
    _float_range("temperature", c.temperature, 0, 100, True)
    _float_range("hidden-weight", c.hidden_weight, 0, 1e6, False)
    _float_range("clip", c.clip, 0, 1e6, False)
    _float_range("weight-decay", c.weight_decay, 0, 1e3, False)
    _float_range("min-lr-ratio", c.min_lr_ratio, 0, 1, True)
    _float_range("beta2", c.beta2, 0, 1, True)
    if c.beta2 >= 1:
        raise UsageError(f"--beta2 {c.beta2:g} out of range (0, 1)")
    _float_range("base-lr-scale", c.base_lr_scale, 0, 1000, True)
    _float_range("pass-lr-scale", c.pass_lr_scale, 0, 1000, True)
    if not c.data:
        raise UsageError("--data is required (token safetensors; vlora-convert converts text before launching the engine)")


def default_lr(manifest) -> float:
    """Go's distill.defaultLR: 5e-4 for quantized storage of 3+ bits without increments, else 2e-3."""
    plan = manifest.quant_plan()
    if plan is None or manifest.increments:
        return DEFAULT_LR
    for s in plan.values():
        if s.active and s.bits < 3:
            return DEFAULT_LR
    return DEFAULT_QAT_LR


def die(msg: str, code: int = 2):
    """Prints one line and exits; invalid input (code 2), the same on every rank, is printed by rank 0 only."""
    import os

    if code != 2 or os.environ.get("RANK", "0") == "0":
        print("vlora_torch: " + " ".join(str(msg).split()), file=sys.stderr)
    sys.exit(code)
