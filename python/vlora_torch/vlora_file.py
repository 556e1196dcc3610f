"""Reading and writing VLoRA files (README "File format").

A VLoRA file is one safetensors file whose ``__metadata__["vlora.manifest"]``
holds a JSON manifest. This module is the one place that knows the layout:
tensor names, float dtypes (F32, F16, BF16, F64 on read), quantized storage
(U8 packed offset-binary codes plus F16 ``{name}.qscales``), which tensors a
manifest implies and in which order they are stored. It decodes tensors
exactly as the Go ``vlora.DecodeTensor`` does and writes files the Go reader
accepts: same tensor names, the manifest's dtype, tensors in the Go storage
order, header padded to 8 bytes, temp file and rename.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field

import numpy as np

MANIFEST_KEY = "vlora.manifest"
FORMAT_NAME = "vlora"
FORMAT_VERSION = 2
SCALES_SUFFIX = ".qscales"


class FormatError(ValueError):
    """Invalid input: a file, tensor or manifest that breaks the format."""


# ---------------------------------------------------------------- dtypes

_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
          "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1}
_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
       "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "u1"}
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


def dtype_size(dt: str) -> int:
    if dt not in _SIZES:
        raise FormatError(f"unknown dtype {dt!r}")
    return _SIZES[dt]


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """Widens bfloat16 bit patterns (uint16) to float32, exactly."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Rounds float32 to bfloat16 bit patterns, ties to even (Go formats.Float32ToBF16)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(x)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    if nan.any():
        r[nan] = ((b[nan] >> 16).astype(np.uint16)) | 0x40
    return r


def decode_float(raw: bytes | memoryview, dt: str, count: int) -> np.ndarray:
    """Converts raw little-endian floats of dtype dt to float32."""
    if dt == "BF16":
        return bf16_to_f32(np.frombuffer(raw, dtype="<u2", count=count))
    if dt not in ("F32", "F16", "F64"):
        raise FormatError(f"dtype {dt} is not a floating-point type")
    return np.frombuffer(raw, dtype=_NP[dt], count=count).astype(np.float32)


def encode_float(x: np.ndarray, dt: str) -> bytes:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if dt == "F32":
        return x.astype("<f4").tobytes()
    if dt == "F16":
        return x.astype("<f2").tobytes()
    if dt == "BF16":
        return f32_to_bf16(x).astype("<u2").tobytes()
    if dt == "F64":
        return x.astype("<f8").tobytes()
    raise FormatError(f"cannot store floats as {dt}")


# ---------------------------------------------------------------- safetensors


@dataclass
class RawTensor:
    name: str
    dtype: str
    shape: list
    data: memoryview


def read_safetensors(path: str):
    """Returns (metadata, {name: RawTensor}) of a safetensors file, names in file order."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise FormatError(f"{path}: {e.strerror or e}") from None
    if len(buf) < 8:
        raise FormatError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8 or n > 100 << 20:
        raise FormatError(f"{path}: not a safetensors file (header of {n} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: safetensors header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(buf)[8 + n:]
    out = {}
    for name, d in header.items():
        try:
            dt, shape, (a, b) = d["dtype"], [int(s) for s in d["shape"]], d["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{path}: tensor {name!r}: malformed header entry") from None
        size = dtype_size(dt) if dt in _SIZES else None
        if size is None:
            raise FormatError(f"{path}: tensor {name!r}: unknown dtype {dt!r}")
        count = math.prod(shape)
        if any(s < 0 for s in shape) or not (0 <= a <= b <= len(body)) or b - a != count * size:
            raise FormatError(f"{path}: tensor {name!r}: data offsets [{a}, {b}) do not hold {dt} {shape}")
        out[name] = RawTensor(name, dt, shape, body[a:b])
    return meta, out


def write_safetensors(path: str, metadata: dict | None, entries: list):
    """Writes entries [(name, dtype, shape, bytes)] in order, through a temp file and rename.

    The header is laid out as the Go writer lays it: metadata first, then the
    tensors in declaration order, padded with spaces to a multiple of 8 bytes.
    """
    parts = []
    if metadata:
        parts.append('"__metadata__":' + json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False))
    off = 0
    for name, dt, shape, data in entries:
        size = math.prod(shape) * dtype_size(dt)
        if len(data) != size:
            raise FormatError(f"tensor {name!r}: {len(data)} bytes for {dt} {shape}")
        parts.append(json.dumps(name, ensure_ascii=False) + ':{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
                     % (dt, ",".join(str(s) for s in shape), off, off + size))
        off += size
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    header += b" " * (-len(header) % 8)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for _, _, _, data in entries:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain create
        # would (0666 less the umask), as the Go writer does.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- quantization


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme as Go's quant.Scheme: bits, group size (0: a row), full range."""

    bits: int = 0
    group: int = 0
    full: bool = False

    @property
    def active(self) -> bool:
        return self.bits != 0

    @staticmethod
    def parse(s) -> "Scheme":
        if s in (None, "", "none"):
            return Scheme()
        if not isinstance(s, str):
            raise FormatError(f"manifest: quantization scheme {s!r} is not a string")
        full = s.endswith("/full")
        body = s[:-5] if full else s
        m = re.fullmatch(r"int(\d+)(?:/(row|g(\d+)))?", body)
        if not m:
            raise FormatError(f"manifest: quantization scheme {s!r} (want e.g. int4/g32, int8/row or int3/g32/full)")
        bits = int(m.group(1))
        group = int(m.group(3)) if m.group(3) else 0
        if not 2 <= bits <= 8 or (m.group(3) is not None and group <= 0):
            raise FormatError(f"manifest: quantization scheme {s!r} out of range")
        return Scheme(bits, group, full)

    def __str__(self) -> str:
        if not self.active:
            return "none"
        g = f"g{self.group}" if self.group else "row"
        return f"int{self.bits}/{g}" + ("/full" if self.full else "")

    @property
    def max_code(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def group_len(self, cols: int) -> int:
        return self.group if self.group else cols

    def num_groups(self, rows: int, cols: int) -> int:
        n = rows * cols
        if n == 0:
            return 0
        g = self.group_len(cols)
        return (n + g - 1) // g

    def code_bytes(self, rows: int, cols: int) -> int:
        return (rows * cols * self.bits + 7) // 8

    def storage_bits(self, rows: int, cols: int) -> int:
        return rows * cols * self.bits + self.num_groups(rows, cols) * 16

    def code_range(self):
        if self.full:
            return -float(1 << (self.bits - 1)), float(self.max_code)
        return -float(self.max_code), float(self.max_code)


def f16_scales(sc: np.ndarray):
    """Rounds float32 scales to F16 as Go's quant.groupScale does.

    Returns (F16 bit patterns, their float32 values, float32 inverses with 0
    for a zero scale).
    """
    sc = np.clip(sc.astype(np.float32), np.float32(-65504), np.float32(65504))
    h = sc.astype("<f2").view(np.uint16).copy()
    f = h.view("<f2").astype(np.float32)
    bump = ((h & 0x7C00) == 0) & (np.abs(f) < np.abs(sc))
    h[bump] += 1
    f = h.view("<f2").astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(f == 0, np.float32(0), np.float32(1) / np.where(f == 0, np.float32(1), f)).astype(np.float32)
    return h, f, inv


def _groups(flat: np.ndarray, g: int) -> np.ndarray:
    """Pads flat with zeros to a multiple of g and views it as [groups, g]."""
    n = flat.size
    pad = (-n) % g
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, flat.dtype)])
    return flat.reshape(-1, g)


def group_scales(x: np.ndarray, s: Scheme, cols: int):
    """Float32 scale of each group of the row-major tensor x (before F16 rounding)."""
    g = s.group_len(cols)
    grp = _groups(np.ascontiguousarray(x, dtype=np.float32).reshape(-1), g)
    amax = np.abs(grp).max(axis=1)
    if s.full:
        # The first element of largest magnitude, with its sign.
        first = np.argmax(np.abs(grp) == amax[:, None], axis=1)
        v = grp[np.arange(grp.shape[0]), first]
        return (v / np.float32(-(1 << (s.bits - 1)))).astype(np.float32), grp
    return (amax / np.float32(s.max_code)).astype(np.float32), grp


def quantize(x: np.ndarray, rows: int, cols: int, s: Scheme):
    """Quantizes the row-major rows × cols float32 tensor x as Go's quant.Quantize.

    Returns (packed U8 codes, F16 scale bit patterns).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size != rows * cols:
        raise FormatError(f"quantize: {x.size} values for {rows} x {cols}")
    if not np.isfinite(x).all():
        raise FormatError("quantize: non-finite value")
    n = x.size
    sc, grp = group_scales(x, s, cols)
    h, _, inv = f16_scales(sc)
    lo, hi = s.code_range()
    t = np.clip(grp * inv[:, None], np.float32(lo), np.float32(hi))
    lvl = np.rint(t).reshape(-1)[:n].astype(np.int64)
    u = (lvl + (1 << (s.bits - 1))).astype(np.uint8)
    bits = ((u[:, None] >> np.arange(s.bits, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    codes = np.packbits(bits, bitorder="little")
    assert codes.size == s.code_bytes(rows, cols)
    return codes, h


def dequantize(codes: np.ndarray, scales_h: np.ndarray, rows: int, cols: int, s: Scheme) -> np.ndarray:
    """Decodes packed codes and F16 scales to float32 code·scale, as Go's quant.Tensor.Dequantize."""
    n = rows * cols
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), bitorder="little")[: n * s.bits]
    u = (bits.reshape(n, s.bits).astype(np.int32) << np.arange(s.bits, dtype=np.int32)).sum(axis=1)
    val = (u - (1 << (s.bits - 1))).astype(np.float32)
    g = s.group_len(cols)
    scale = np.repeat(np.asarray(scales_h, dtype=np.uint16).view("<f2").astype(np.float32), g)[:n]
    return val * scale


# ---------------------------------------------------------------- manifest


def matrix(shape) -> tuple:
    """Views a shape as [shape[0], product of the rest] (1 column for 1-D)."""
    if not shape:
        return 1, 1
    return shape[0], math.prod(shape[1:])


def base_name(c: int, suffix: str) -> str:
    return f"vlora.compounds.{c}.{suffix}.base"


def lora_a_name(l: int, suffix: str) -> str:
    return f"vlora.layers.{l}.{suffix}.lora_A"


def lora_b_name(l: int, suffix: str) -> str:
    return f"vlora.layers.{l}.{suffix}.lora_B"


def delta_name(l: int, suffix: str) -> str:
    return f"vlora.layers.{l}.{suffix}.delta"


def family(name: str, shape) -> str:
    if len(shape) < 2:
        return "vectors"
    if name.startswith("vlora.compounds."):
        return "bases"
    if name.startswith("vlora.layers."):
        return "factors"
    return "passthrough"


class Manifest:
    """The manifest of a VLoRA file, kept as the parsed JSON object (all fields, in order)."""

    def __init__(self, obj: dict):
        self.obj = obj

    # --- fields
    @property
    def num_layers(self) -> int:
        return self.obj["num_layers"]

    @property
    def layer_prefix(self) -> str:
        return self.obj["layer_prefix"]

    @property
    def compound_size(self) -> int:
        return self.obj["compound_size"]

    @property
    def compounds(self) -> list:
        return self.obj["compounds"]

    @property
    def suffixes(self) -> list:
        return self.obj["suffixes"]

    @property
    def passthrough(self) -> list:
        return self.obj.get("passthrough") or []

    @property
    def increments(self) -> list:
        return self.obj.get("increments") or []

    @property
    def dtype(self) -> str:
        return self.obj.get("dtype") or "F32"

    @property
    def config(self) -> dict | None:
        return self.obj.get("config")

    def base_for(self, suffix: str) -> str:
        return (self.obj.get("suffix_bases") or {}).get(suffix, self.obj["base_mode"])

    def has_base(self, suffix: str) -> bool:
        return self.base_for(suffix) != "zero"

    def quant_plan(self) -> dict | None:
        q = self.obj.get("quant")
        if not q:
            return None
        return {k: Scheme.parse(q.get(k)) for k in ("bases", "factors", "passthrough")}

    def scheme_of(self, name: str, shape) -> Scheme | None:
        plan = self.quant_plan()
        if plan is None:
            return None
        fam = family(name, shape)
        if fam == "vectors":
            return None
        s = plan[fam]
        return s if s.active else None

    def increment(self, l: int, suffix: str) -> dict | None:
        for inc in self.increments:
            if inc["layer"] == l and inc["suffix"] == suffix:
                return inc
        return None

    def layer_name(self, l: int, suffix: str) -> str:
        return f"{self.layer_prefix}{l}.{suffix}"

    def compound_of(self, l: int) -> int:
        return l // self.compound_size

    # --- implied tensors
    def expected_tensors(self) -> dict:
        out = {}
        for p in self.passthrough:
            out[p["name"]] = list(p["shape"])
        suf = {s["name"]: list(s["shape"]) for s in self.suffixes}
        for c in range(len(self.compounds)):
            for s in self.suffixes:
                if self.has_base(s["name"]):
                    out[base_name(c, s["name"])] = list(s["shape"])
        for inc in self.increments:
            shape = suf[inc["suffix"]]
            if inc["kind"] == "dense":
                out[delta_name(inc["layer"], inc["suffix"])] = shape
                continue
            rows, cols = matrix(shape)
            out[lora_a_name(inc["layer"], inc["suffix"])] = [inc["rank"], cols]
            out[lora_b_name(inc["layer"], inc["suffix"])] = [rows, inc["rank"]]
        return out

    def storage_order(self) -> list:
        """Stored tensor names in Go's file order: pass-through, then per compound its bases and its layers' increments."""
        out = [p["name"] for p in self.passthrough]
        incs = {(i["layer"], i["suffix"]): i for i in self.increments}
        for c, layers in enumerate(self.compounds):
            for s in self.suffixes:
                if self.has_base(s["name"]):
                    out.append(base_name(c, s["name"]))
            for l in layers:
                for s in self.suffixes:
                    inc = incs.get((l, s["name"]))
                    if inc is None:
                        continue
                    if inc["kind"] == "dense":
                        out.append(delta_name(l, s["name"]))
                    else:
                        out += [lora_b_name(l, s["name"]), lora_a_name(l, s["name"])]
        return out

    # --- validation (as Go's Manifest.Validate)
    def validate(self):
        o = self.obj
        bad = lambda msg: FormatError("manifest: " + msg)  # noqa: E731
        if o.get("format") != FORMAT_NAME:
            raise bad(f"format is {o.get('format')!r}, want {FORMAT_NAME!r}")
        v = o.get("format_version")
        if not isinstance(v, int) or not 1 <= v <= FORMAT_VERSION:
            raise bad(f"format version {v} is not supported (this build reads 1 to {FORMAT_VERSION})")
        if o.get("quant") and v < 2:
            raise bad(f"quantized storage needs format version 2, not {v}")
        self.quant_plan()
        for key in ("base_mode", "layer_prefix", "num_layers", "compound_size", "compounds", "suffixes"):
            if key not in o:
                raise bad(f"missing field {key!r}")
        modes = ("first", "mean", "zero")
        if o["base_mode"] not in modes:
            raise bad(f"unknown base mode {o['base_mode']!r} (want first, mean or zero)")
        n, k = o["num_layers"], o["compound_size"]
        if not isinstance(n, int) or not 1 <= n <= 1 << 20:
            raise bad(f"num_layers {n} out of range")
        if not o["layer_prefix"]:
            raise bad("empty layer_prefix")
        if not isinstance(k, int) or k < 1:
            raise bad(f"compound_size {k} < 1")
        want = [list(range(s, min(n, s + k))) for s in range(0, n, k)]
        if o["compounds"] != want:
            raise bad(f"compounds {o['compounds']} do not partition {n} layers into runs of {k}")
        suf = {}
        for s in o["suffixes"]:
            name, shape = s.get("name"), s.get("shape")
            if not name or name in suf:
                raise bad(f"suffix {name!r} empty or listed twice")
            if not isinstance(shape, list) or not 1 <= len(shape) <= 8 or any(not isinstance(d, int) or d < 1 for d in shape):
                raise bad(f"suffix {name!r} has shape {shape}")
            suf[name] = shape
        if not suf:
            raise bad("no suffixes")
        for name, b in (o.get("suffix_bases") or {}).items():
            if name not in suf or b not in modes:
                raise bad(f"base mode {b!r} for suffix {name!r}")
        seen = set()
        for inc in self.increments:
            s = suf.get(inc.get("suffix"))
            if s is None:
                raise bad(f"increment for unknown suffix {inc.get('suffix')!r}")
            l = inc.get("layer")
            if not isinstance(l, int) or not 0 <= l < n:
                raise bad(f"increment for layer {l} out of range")
            key = (l, inc["suffix"])
            if key in seen:
                raise bad(f"layer {l} {inc['suffix']} has two increments")
            seen.add(key)
            if inc.get("kind") == "lowrank":
                if len(s) < 2:
                    raise bad(f"layer {l} {inc['suffix']}: low-rank increment of a 1-D tensor")
                rows, cols = matrix(s)
                r = inc.get("rank")
                if not isinstance(r, int) or not 0 <= r <= min(rows, cols):
                    raise bad(f"layer {l} {inc['suffix']}: rank {r} out of range for {rows}x{cols}")
            elif inc.get("kind") != "dense":
                raise bad(f"layer {l} {inc['suffix']}: unknown increment kind {inc.get('kind')!r}")
        for c in o["compounds"]:
            for j, l in enumerate(c):
                for name in suf:
                    need = not (j == 0 and self.base_for(name) == "first")
                    if need != ((l, name) in seen):
                        raise bad(f"layer {l} {name}: increment present={not need}, but base mode {self.base_for(name)} needs {need}")

    def to_json(self) -> str:
        return json.dumps(self.obj, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- the file


@dataclass
class VLoRAFile:
    """A VLoRA file in memory: its manifest and every stored tensor decoded to float32 (manifest shape)."""

    manifest: Manifest
    tensors: dict = field(default_factory=dict)
    path: str = ""


def check_tensors(mf: Manifest, raw: dict, path: str):
    """Checks that the file stores exactly the tensors mf implies (Go vlora.CheckTensors)."""
    want = {}
    for name, shape in mf.expected_tensors().items():
        s = mf.scheme_of(name, shape)
        if s is None:
            want[name] = (shape, None)
            continue
        rows, cols = matrix(shape)
        want[name] = ([s.code_bytes(rows, cols)], "U8")
        want[name + SCALES_SUFFIX] = ([s.num_groups(rows, cols)], "F16")
    for name, t in raw.items():
        if name not in want:
            raise FormatError(f"{path}: tensor {name!r} is not described by the manifest")
        shape, dt = want[name]
        if list(t.shape) != list(shape):
            raise FormatError(f"{path}: tensor {name!r} has shape {t.shape}, manifest implies {shape}")
        if dt is not None and t.dtype != dt:
            raise FormatError(f"{path}: tensor {name!r} has dtype {t.dtype}, its quantized storage needs {dt}")
        if dt is None and t.dtype not in FLOAT_DTYPES:
            raise FormatError(f"{path}: tensor {name!r} has non-float dtype {t.dtype}")
    for name in want:
        if name not in raw:
            raise FormatError(f"{path}: manifest expects tensor {name!r}, which is missing")


def resolve_path(path: str) -> str:
    """Accepts a VLoRA file or a directory holding model.vlora.safetensors."""
    if os.path.isdir(path):
        p = os.path.join(path, "model.vlora.safetensors")
        if not os.path.exists(p):
            raise FormatError(f"{path}: no model.vlora.safetensors in directory")
        return p
    return path


def read_manifest(path: str):
    path = resolve_path(path)
    meta, raw = read_safetensors(path)
    if MANIFEST_KEY not in meta:
        raise FormatError(f"{path}: not a VLoRA file (no {MANIFEST_KEY!r} in __metadata__)")
    try:
        obj = json.loads(meta[MANIFEST_KEY])
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: manifest: {e}") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: manifest is not a JSON object")
    mf = Manifest(obj)
    try:
        mf.validate()
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    check_tensors(mf, raw, path)
    return mf, raw, path


def decode_tensor(mf: Manifest, raw: dict, name: str, shape, path: str = "") -> np.ndarray:
    """Decodes stored tensor name to float32 in its manifest shape (Go vlora.DecodeTensor)."""
    s = mf.scheme_of(name, shape)
    t = raw[name]
    if s is None:
        out = decode_float(t.data, t.dtype, math.prod(shape))
        return out.reshape(shape)
    rows, cols = matrix(shape)
    codes = np.frombuffer(t.data, dtype=np.uint8)
    sc = raw[name + SCALES_SUFFIX]
    h = np.frombuffer(sc.data, dtype="<u2")
    bad = np.nonzero((h & 0x7C00) == 0x7C00)[0]
    if bad.size:
        raise FormatError(f"{path}: tensor {name!r}: non-finite scale of group {int(bad[0])}")
    return dequantize(codes, h, rows, cols, s).reshape(shape)


def load(path: str) -> VLoRAFile:
    """Reads a whole VLoRA file (or directory), checking it against its manifest."""
    mf, raw, path = read_manifest(path)
    tensors = {}
    for name, shape in mf.expected_tensors().items():
        arr = decode_tensor(mf, raw, name, shape, path)
        if not np.isfinite(arr).all():
            i = int(np.nonzero(~np.isfinite(arr.reshape(-1)))[0][0])
            raise FormatError(f"{path}: tensor {name!r}: non-finite value at element {i}")
        tensors[name] = arr
    return VLoRAFile(mf, tensors, path)


def storage_bits(mf: Manifest) -> int:
    """Bits of every stored tensor: quantized at codes plus F16 scales, the others in the manifest dtype."""
    size = dtype_size(mf.dtype)
    total = 0
    for name, shape in mf.expected_tensors().items():
        s = mf.scheme_of(name, shape)
        if s is None:
            total += math.prod(shape) * size * 8
        else:
            total += s.storage_bits(*matrix(shape))
    return total


def save(vf: VLoRAFile, path: str):
    """Writes vf to path in the manifest's dtype (quantized families as codes + scales), atomically.

    As Go's Model.Save, format_version becomes 2 and counts.params_stored and
    counts.bytes_stored are refreshed.
    """
    mf = vf.manifest
    dt = mf.dtype
    if dt not in FLOAT_DTYPES:
        raise FormatError(f"manifest: dtype {dt!r} is not a float dtype")
    entries = []
    params = 0
    expected = mf.expected_tensors()
    for name in mf.storage_order():
        if name not in vf.tensors:
            raise FormatError(f"tensor {name!r} missing from model")
        x = np.asarray(vf.tensors[name], dtype=np.float32)
        shape = expected[name]
        if list(x.shape) != list(shape):
            raise FormatError(f"tensor {name!r} has shape {list(x.shape)}, manifest implies {shape}")
        params += x.size
        s = mf.scheme_of(name, shape)
        if s is None:
            entries.append((name, dt, shape, encode_float(x, dt)))
            continue
        rows, cols = matrix(shape)
        codes, h = quantize(x, rows, cols, s)
        entries.append((name, "U8", [codes.size], codes.tobytes()))
        entries.append((name + SCALES_SUFFIX, "F16", [h.size], h.astype("<u2").tobytes()))
    mf.obj["format_version"] = FORMAT_VERSION
    counts = mf.obj.setdefault("counts", {})
    counts["params_stored"] = params
    counts["bytes_stored"] = (storage_bits(mf) + 7) // 8
    write_safetensors(path, {MANIFEST_KEY: mf.to_json()}, entries)
