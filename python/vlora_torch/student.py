"""The teacher and the VLoRA student as Hugging Face models.

The teacher is the original model, loaded by transformers from its
directory. The student is the same model class in which every weight of the
layer stack is computed by a VLoRAWeight module from the VLoRA parameters:
the compound's base (one nn.Parameter shared by every layer of the compound,
or none), plus the layer's lora_B·lora_A or dense delta. Pass-through
tensors (embeddings, final norm, head) are the model's own parameters,
loaded from the file. Quantized tensors are decoded at load and, in the
forward pass, fake-quantized from their float master weights (straight
through), as the Go distill package does.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from . import vlora_file as vf
from .fakequant import fake_quant_ste
from .vlora_file import FormatError


def load_teacher(original: str, device="cpu", attn="eager"):
    """Loads the original model from its Hugging Face directory in float32, in eval mode."""
    import transformers

    if not os.path.isfile(os.path.join(original, "config.json")):
        raise FormatError(f"--original {original}: no config.json (want a Hugging Face model directory)")
    with open(os.path.join(original, "config.json")) as f:
        cfg = json.load(f)
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else ""
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        cls = transformers.AutoModelForCausalLM
    try:
        model = cls.from_pretrained(original, dtype=torch.float32, attn_implementation=attn)
    except (OSError, ValueError) as e:
        raise FormatError(f"--original {original}: {str(e).splitlines()[0]}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


class VLoRAWeight(nn.Module):
    """One dense layer weight W = base + lora_B·lora_A (or base + delta, or base), in the stored shape.

    base is shared (the same nn.Parameter object) by every layer of a
    compound; it is None for suffixes stored without a base.
    """

    def __init__(self, shape, base, lora_a=None, lora_b=None, delta=None, schemes=None):
        super().__init__()
        self.shape = list(shape)
        self.base = base
        self.lora_A = lora_a
        self.lora_B = lora_b
        self.delta = delta
        # schemes: quantization scheme of base/lora_A/lora_B/delta (None: float).
        self.schemes = schemes or {}

    def forward(self) -> torch.Tensor:
        q = lambda name, t: fake_quant_ste(t, self.schemes.get(name))  # noqa: E731
        if self.base is not None:
            w = q("base", self.base)
        else:
            w = None
        if self.delta is not None:
            d = q("delta", self.delta)
            w = d if w is None else w + d
        elif self.lora_A is not None and self.lora_A.shape[0] > 0:
            ba = (q("lora_B", self.lora_B) @ q("lora_A", self.lora_A)).reshape(self.shape)
            w = ba if w is None else w + ba
        if w is None:
            ref = self.lora_A if self.lora_A is not None else self.base
            w = torch.zeros(self.shape, dtype=torch.float32, device=ref.device if ref is not None else None)
        return w


class _Provided(nn.Module):
    """Holds a module's weights computed by VLoRAWeight modules (attr -> module)."""

    def __init__(self):
        super().__init__()
        self.attrs = nn.ModuleDict()


def _install(module: nn.Module, attr: str, provider: nn.Module):
    """Replaces module.attr (a parameter) by the value provider() computes before each forward."""
    if attr in module._parameters:
        del module._parameters[attr]
    holder = getattr(module, "vlora", None)
    if holder is None:
        holder = _Provided()
        module.vlora = holder

        def pre_hook(mod, args, kwargs=None):
            for a, p in mod.vlora.attrs.items():
                object.__setattr__(mod, a, p())
            return None

        module.register_forward_pre_hook(pre_hook)
    holder.attrs[attr] = provider
    # The value at install time, for code that reads the attribute outside the
    # module's forward (its dtype or device); the forward always recomputes it.
    with torch.no_grad():
        object.__setattr__(module, attr, provider().detach())


def _hf_param_index(model: nn.Module):
    """Maps every parameter and buffer name (duplicates included) to (module, attr, tensor)."""
    out = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        for attr, p in list(mod._parameters.items()) + list(mod._buffers.items()):
            if p is None:
                continue
            out[(mname + "." if mname else "") + attr] = (mod, attr, p)
    return out


def _renamer(model):
    """The checkpoint-key renaming transformers applies when loading model (pure renamings only), or None."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
    except ImportError:
        return None
    try:
        transforms = get_model_conversion_mapping(model)
    except Exception:  # noqa: BLE001  (models without a mapping)
        return None
    ren = [t for t in transforms if isinstance(t, WeightRenaming)]
    conv = [t for t in transforms if isinstance(t, WeightConverter)]
    if not ren and not conv:
        return None
    meta = {k: True for k, _ in model.named_parameters(remove_duplicate=False)}

    def rename(name):
        key, converted = rename_source_key(name, ren, conv, getattr(model, "base_model_prefix", None), meta)
        return None if converted is not None else key

    return rename


def _resolve(index: dict, name: str, rename=None):
    """Finds the model entry of the checkpoint tensor name: exact, as transformers renames it, or by a dotted suffix."""
    if name in index:
        return name
    if rename is not None:
        key = rename(name)
        if key is not None and key in index:
            return key
    cands = [k for k in index if k.endswith("." + name)]
    if len(cands) == 1:
        return cands[0]
    parts = name.split(".")
    for i in range(1, len(parts)):
        sub = ".".join(parts[i:])
        if sub in index:
            return sub
    return None


TRAIN_SETS = ("factors", "bases", "all")


class Student:
    """A VLoRA student: the HF model plus its VLoRA parameters by stored tensor name.

    params maps every stored tensor name the model uses to its float32
    master nn.Parameter (pass-through tensors: the model's own parameter);
    kind maps it to "base", "factor" or "pass"; trainable lists the names
    trained for the set given.
    """

    def __init__(self, model, file: vf.VLoRAFile, params: dict, kind: dict, schemes: dict, train: str):
        self.model = model
        self.file = file
        self.params = params
        self.kind = kind
        self.schemes = schemes
        self.train = train
        self.trainable = [n for n in params if self._trains(n)]
        for n, p in params.items():
            p.requires_grad_(n in self.trainable)

    def _trains(self, name):
        k = self.kind[name]
        if k == "factor":
            return True
        if k == "base":
            return self.train in ("bases", "all")
        return self.train == "all"


def build_student(teacher_or_model: nn.Module, file: vf.VLoRAFile, train: str = "bases", copy=True) -> Student:
    """Builds the student from a model of the original's class and a loaded VLoRA file.

    With copy (default) the model is deep-copied first (the teacher stays intact).
    """
    import copy as _copy

    if train not in TRAIN_SETS:
        raise FormatError(f"--train: unknown trainable set {train!r} (want factors, bases or all)")
    model = _copy.deepcopy(teacher_or_model) if copy else teacher_or_model
    model.eval()
    mf = file.manifest
    index = _hf_param_index(model)
    rename = _renamer(model)
    device = next(model.parameters()).device
    params, kind, schemes = {}, {}, {}
    plan_active = mf.quant_plan() is not None

    def param(name, k):
        if name not in params:
            t = torch.from_numpy(np.ascontiguousarray(file.tensors[name], dtype=np.float32)).to(device)
            params[name] = nn.Parameter(t.clone())
            kind[name] = k
            s = mf.scheme_of(name, list(t.shape)) if plan_active else None
            if s is not None:
                schemes[name] = s
        return params[name]

    covered = set()
    suffixes = {s["name"]: s for s in mf.suffixes}
    for l in range(mf.num_layers):
        c = mf.compound_of(l)
        for sname, sdesc in suffixes.items():
            orig = mf.layer_name(l, sname)
            key = _resolve(index, orig, rename)
            if key is None:
                continue  # stored but unused by this architecture, as Go's distill ignores it
            mod, attr, ref = index[key]
            if list(ref.shape) != list(sdesc["shape"]):
                raise FormatError(f"tensor {orig!r}: shape {sdesc['shape']} in the VLoRA file, {list(ref.shape)} in the model")
            if not isinstance(ref, nn.Parameter):
                continue
            base = param(vf.base_name(c, sname), "base") if mf.has_base(sname) else None
            inc = mf.increment(l, sname)
            a = b = d = None
            if inc is not None and inc["kind"] == "dense":
                d = param(vf.delta_name(l, sname), "factor")
            elif inc is not None:
                a = param(vf.lora_a_name(l, sname), "factor")
                b = param(vf.lora_b_name(l, sname), "factor")
            sch = {}
            for role, p, n in (("base", base, vf.base_name(c, sname)), ("lora_A", a, vf.lora_a_name(l, sname)),
                               ("lora_B", b, vf.lora_b_name(l, sname)), ("delta", d, vf.delta_name(l, sname))):
                if p is not None and n in schemes:
                    sch[role] = schemes[n]
            w = VLoRAWeight(sdesc["shape"], base, a, b, d, sch)
            # Install on every module holding this parameter (tied weights included).
            for k2, (m2, a2, r2) in index.items():
                if r2 is ref:
                    _install(m2, a2, w)
                    covered.add(k2)
    # Pass-through tensors: the model's own parameters, loaded from the file.
    for p in mf.passthrough:
        name = p["name"]
        key = _resolve(index, name, rename)
        if key is None:
            continue
        mod, attr, ref = index[key]
        if list(ref.shape) != list(p["shape"]):
            raise FormatError(f"tensor {name!r}: shape {p['shape']} in the VLoRA file, {list(ref.shape)} in the model")
        if not isinstance(ref, nn.Parameter):
            with torch.no_grad():
                ref.copy_(torch.from_numpy(file.tensors[name]).reshape(ref.shape))
            continue
        s = mf.scheme_of(name, p["shape"]) if plan_active else None
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(file.tensors[name])).to(device).reshape(ref.shape)
            ref.data = t.clone().to(ref.dtype)
        params[name], kind[name] = ref, "pass"
        if s is not None:
            schemes[name] = s
            w = _PassQuant(ref, s)
            for k2, (m2, a2, r2) in index.items():
                if r2 is ref:
                    _install(m2, a2, w)
        for k2, (m2, a2, r2) in index.items():
            if r2 is ref:
                covered.add(k2)
    missing = [k for k, (m, a, r) in index.items() if isinstance(r, nn.Parameter) and k not in covered]
    if missing:
        raise FormatError(f"the VLoRA file does not hold the model parameter {missing[0]!r}")
    return Student(model, file, params, kind, schemes, train)


class _PassQuant(nn.Module):
    """The fake-quantized forward value of a quantized pass-through parameter."""

    def __init__(self, p: nn.Parameter, s):
        super().__init__()
        self.p = p
        self.s = s

    def forward(self):
        return fake_quant_ste(self.p, self.s)


def logits(model: nn.Module, input_ids: torch.Tensor, hidden=False):
    """Runs a causal LM: (logits [B, T, V] float32, hidden states tuple or None)."""
    out = model(input_ids=input_ids, output_hidden_states=hidden, use_cache=False)
    return out.logits, (out.hidden_states if hidden else None)
