"""Distill a VLoRA file towards its original model: the recipe of Go's `vlora-convert distill`, on PyTorch.

    python -m vlora_torch.distill INIT_FILE --original DIR --out OUT_FILE --data TOKENS [flags]
    torchrun --nproc-per-node N -m vlora_torch.distill ...

KL(teacher ‖ student) at a temperature (times τ²), mean over all positions
of the global batch, plus --hidden-weight times the mean over layers 1…L of
the relative squared error of the hidden states over the global batch;
AdamW with decoupled weight decay and bias correction, linear warm-up and a
cosine or linear decay to --min-lr-ratio, clipping of the global gradient
norm, per-class learning-rate scales. --batch is the global batch: with W
ranks each takes batch/W of every step's sequences (split further into
--grad-accum micro-batches). Batches are Go's (seed, step) draws unless
--batch-order gives them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from . import config as C
from . import data as D
from . import recipe as R
from . import student as S
from . import vlora_file as vf
from .batches import batch_indices, load_batch_order
from .vlora_file import FormatError


# ---------------------------------------------------------------- process group


class Dist:
    """Rank, world size and device of this process."""

    def __init__(self, device_flag: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_flag == "auto" else device_flag == "cuda"
        if device_flag == "cuda" and not torch.cuda.is_available():
            raise FormatError("--device cuda: no CUDA device is available")
        self.device = torch.device(f"cuda:{self.local}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def on(self) -> bool:
        return self.world > 1

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.on:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self):
        if self.on:
            dist.barrier()


def _log(msg: str):
    print(msg, file=sys.stderr, flush=True)


class Progress:
    def __init__(self, enabled: bool, rank: int):
        self.enabled = enabled and rank == 0
        self.rank = rank

    def emit(self, **kw):
        if self.enabled:
            print(json.dumps(kw), flush=True)


# ---------------------------------------------------------------- wrapping


def _zero_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for attr in ("attention_dropout", "dropout"):
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, 0.0)


def _layer_list(model, prefix: str):
    """The ModuleList holding the layer stack named prefix ("model.layers.")."""
    path = prefix.rstrip(".")
    mods = dict(model.named_modules())
    if path in mods:
        return mods[path]
    for name, m in mods.items():
        if name.endswith("." + path) or path.endswith("." + name) and isinstance(m, torch.nn.ModuleList):
            return m
    for name, m in mods.items():
        if isinstance(m, torch.nn.ModuleList) and path.split(".")[-1] == name.split(".")[-1]:
            return m
    return None


def _fsdp(model, compounds, prefix):
    """Shards model with FSDP2: one unit per compound (its layers with their shared bases), then the root."""
    from torch.distributed.fsdp import fully_shard

    layers = _layer_list(model, prefix)
    if layers is None:
        raise FormatError(f"--fsdp: cannot find the layer stack {prefix!r} in the model")
    for c in compounds:
        fully_shard([layers[l] for l in c])
    fully_shard(model)
    return model


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU (gathering a sharded DTensor)."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().to("cpu", torch.float32).clone()


def _set_full(p: torch.Tensor, full: torch.Tensor):
    """Writes the whole tensor full into p (a plain tensor or a sharded DTensor)."""
    with torch.no_grad():
        if hasattr(p, "device_mesh"):
            from torch.distributed.tensor import distribute_tensor

            d = distribute_tensor(full.to(p.to_local().device, p.dtype), p.device_mesh, p.placements)
            p.to_local().copy_(d.to_local())
        else:
            p.copy_(full.to(p.device, p.dtype))


# ---------------------------------------------------------------- the run


class Run:
    def __init__(self, cfg: C.Config, env: Dist):
        self.cfg, self.env = cfg, env
        self.progress = Progress(cfg.progress_json, env.rank)
        self.file = vf.load(cfg.init)
        mf = self.file.manifest
        if cfg.lr == 0:
            cfg.lr = C.default_lr(mf)
        # Under FSDP the models are loaded on the CPU and each device receives only its shards.
        self.sharded = cfg.fsdp and env.on
        self.teacher = S.load_teacher(cfg.original, device="cpu" if self.sharded else env.device)
        tc = self.teacher.config.get_text_config() if hasattr(self.teacher.config, "get_text_config") else self.teacher.config
        # Image classifiers (ViT) match class logits on pixel_values; language models next-token logits.
        self.images = getattr(self.teacher, "main_input_name", "input_ids") == "pixel_values"
        vocab = getattr(tc, "vocab_size", 0) if not self.images else 0
        maxpos = None if self.images else getattr(tc, "max_position_embeddings", None) or getattr(tc, "n_positions", None)
        self.train_ids = D.load_tokens(cfg.data, cfg.seq_len, 0, vocab, "--data", self.images)
        self.train_source, self.train_sha = D.data_record(cfg.data)
        self.eval_ids = None
        if cfg.eval_data:
            self.eval_ids = D.load_tokens(cfg.eval_data, cfg.seq_len, cfg.eval_samples or 64, vocab, "--eval-data", self.images)
        N, T = self.train_ids.shape[:2]
        if self.images:
            T = 1  # an image counts as one token, and gives one row of logits
        self.T = T
        if maxpos and T > maxpos:
            raise C.UsageError(f"--data {cfg.data}: sequences of {T} tokens exceed the model's {maxpos} positions (set --seq-len)")
        if cfg.tokens > 0:
            per = cfg.batch * T
            cfg.steps = (cfg.tokens + per - 1) // per
        W = env.world
        if cfg.batch % (W * cfg.grad_accum) != 0:
            raise C.UsageError(f"--batch {cfg.batch} must be a multiple of the {W} ranks times --grad-accum {cfg.grad_accum}")
        if cfg.augment > 0 and self.images:
            raise C.UsageError("--augment needs a language model and token data")
        if cfg.augment > 0:
            keep = cfg.augment_prefix or max(1, min(32, T // 8))
            if keep >= T:
                raise C.UsageError(f"--augment-prefix {keep} must be below the sequence length {T} of {cfg.data}")
            self.aug_keep = keep
        self.order = None
        self.student = S.build_student(self.teacher, self.file, cfg.train)
        if cfg.activation_checkpointing:
            _zero_dropout(self.student.model)
            self.student.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.student.model.train()
        self.log = []
        self.start = 0
        self.aug = None
        self._resume_state = None
        if cfg.resume and os.path.exists(cfg.checkpoint_path):
            self._resume_state = torch.load(cfg.checkpoint_path, map_location="cpu", weights_only=False)
            ck = self._resume_state
            if ck.get("init_sha") != D.sha256_file(self.file.path) or ck.get("steps") != cfg.steps or ck.get("batch") != cfg.batch:
                raise FormatError(f"--resume: {cfg.checkpoint_path} belongs to another run (initial file, --steps or --batch differ)")
            self.start, self.log = ck["step"], ck["log"]
            self.aug = ck.get("augment")
            with torch.no_grad():
                for name, t in ck["params"].items():
                    self.student.params[name].copy_(t.to(self.student.params[name].device))
        self._wrap()
        if cfg.augment > 0 and self.aug is None:
            if env.rank == 0:
                _log(f"augment: sampling {cfg.augment} continuations of {self.aug_keep} tokens on {env.device}")
            self.aug = D.continuations(self.teacher, self.train_ids, cfg.augment, self.aug_keep, cfg.seed, env.device, env.rank, W)
        if self.aug is not None:
            self.train_ids = np.concatenate([self.train_ids, self.aug])
            self.train_source = f"{self.train_source} + {cfg.augment} continuations by the original model (seed {cfg.seed}) of the first {self.aug_keep} tokens of {cfg.data}"
        self.N = self.train_ids.shape[0]
        if cfg.batch_order:
            self.order = load_batch_order(cfg.batch_order, cfg.steps, cfg.batch, self.N)

    def _wrap(self):
        cfg, env, st = self.cfg, self.env, self.student
        names = [n for n in self.file.manifest.storage_order() if n in st.trainable]
        self.train_names = names
        self.train_params = [st.params[n] for n in names]
        model = st.model
        # Where each stored tensor's parameter is registered, to find it again after sharding.
        homes = {}
        ids = {id(p): n for n, p in st.params.items()}
        for mod in model.modules():
            for attr, p in mod._parameters.items():
                if p is not None and id(p) in ids:
                    homes.setdefault(ids[id(p)], (mod, attr))
        if cfg.fsdp:
            if not env.on:
                _log("note: --fsdp with one process shards nothing")
            mf = self.file.manifest
            model = _fsdp(model, mf.compounds, mf.layer_prefix) if env.on else model
            if env.on:
                _fsdp(self.teacher, mf.compounds, mf.layer_prefix)
        elif env.on:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        self.net = model
        # After wrapping (FSDP replaces parameters by sharded ones), look them up again by identity of modules.
        if cfg.fsdp and env.on:
            for n, (mod, attr) in homes.items():
                st.params[n] = mod._parameters[attr]
            self.train_params = [st.params[n] for n in names]
        groups = {}
        for n, p in zip(names, self.train_params):
            k = st.kind[n]
            scale = {"factor": 1.0, "base": cfg.base_lr_scale, "pass": cfg.pass_lr_scale}[k]
            groups.setdefault(scale, []).append(p)
        self.group_scales = list(groups)
        self.optim = torch.optim.AdamW(
            [{"params": ps, "lr": cfg.lr * s} for s, ps in groups.items()],
            lr=cfg.lr, betas=(0.9, cfg.beta2), eps=1e-8, weight_decay=cfg.weight_decay, foreach=False)
        if self._resume_state is not None:
            self._load_optim(self._resume_state["optim"])

    # --- optimizer state by stored tensor name (independent of sharding and rank count)
    def _optim_state(self):
        out = {}
        for n, p in zip(self.train_names, self.train_params):
            s = self.optim.state.get(p)
            if not s:
                continue
            out[n] = {"step": float(s["step"]), "exp_avg": _full(s["exp_avg"]), "exp_avg_sq": _full(s["exp_avg_sq"])}
        return out

    def _load_optim(self, state):
        for n, p in zip(self.train_names, self.train_params):
            if n not in state:
                continue
            s = state[n]
            ea, eas = torch.zeros_like(p), torch.zeros_like(p)
            _set_full(ea, s["exp_avg"])
            _set_full(eas, s["exp_avg_sq"])
            self.optim.state[p] = {"step": torch.tensor(s["step"], dtype=torch.float32), "exp_avg": ea, "exp_avg_sq": eas}

    def _stored_arrays(self):
        """The stored tensors after training (fake quantization committed), gathered on every rank."""
        st = self.student
        out = dict(self.file.tensors)
        for name in self.train_names:
            # Frozen tensors keep the values read from the file.
            t = _full(st.params[name])
            s = st.schemes.get(name)
            if s is not None:
                from .fakequant import fake_quant_value

                t = fake_quant_value(t, s)
            out[name] = t.numpy().reshape(self.file.tensors[name].shape)
        return out

    def _save_checkpoint(self, step):
        params = {n: _full(self.student.params[n]) for n in self.train_names}
        optim = self._optim_state()
        if self.env.rank != 0:
            return
        ck = {"step": step, "log": self.log, "params": params, "optim": optim, "augment": self.aug,
              "init_sha": D.sha256_file(self.file.path), "steps": self.cfg.steps, "batch": self.cfg.batch}
        path = self.cfg.checkpoint_path
        tmp = path + ".tmp"
        torch.save(ck, tmp)
        os.replace(tmp, path)

    # --- one step
    def _inputs(self, data, sel):
        """Model keyword arguments for the items sel of data (token ids or pixel values)."""
        x = torch.from_numpy(data[sel]).to(self.env.device)
        if self.images:
            return {"pixel_values": x}
        return {"input_ids": x, "use_cache": False}

    def _indices(self, s):
        if self.order is not None:
            return [int(i) for i in self.order[s]]
        return batch_indices(self.cfg.seed, s, self.cfg.batch, self.N)

    def _autocast(self):
        if self.cfg.dtype == "bf16":
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.env.device.type, enabled=False)

    def step(self, s):
        cfg, env = self.cfg, self.env
        W, A = env.world, cfg.grad_accum
        idx = self._indices(s)
        per_rank = cfg.batch // W
        mine = idx[env.rank * per_rank:(env.rank + 1) * per_rank]
        micro = per_rank // A
        rows_global = cfg.batch * self.T
        hw = R.hidden_weight(s, cfg.steps, cfg.hidden_weight, cfg.hidden_decay)
        want_hidden = cfg.hidden_weight > 0
        # Teacher outputs for all micro-batches, and the global hidden-state denominators.
        tout = []
        den = None
        with torch.no_grad(), self._autocast():
            for m in range(A):
                ids = self._inputs(self.train_ids, mine[m * micro:(m + 1) * micro])
                o = self.teacher(**ids, output_hidden_states=want_hidden)
                hs = [h.float() for h in o.hidden_states[1:]] if want_hidden else None
                tout.append((ids, o.logits.float(), hs))
                if want_hidden:
                    d = torch.stack([R.sq_norm(h).double() for h in hs])
                    den = d if den is None else den + d
        if want_hidden:
            env.all_sum(den)
            den = torch.where(den == 0, torch.ones_like(den), den)
        self.optim.zero_grad(set_to_none=True)
        kl_sum = torch.zeros((), dtype=torch.float64, device=env.device)
        hid_sum = torch.zeros((), dtype=torch.float64, device=env.device)
        tau = cfg.temperature
        for m, (ids, tl, ths) in enumerate(tout):
            sync = m == A - 1
            ctx = self._no_sync(sync)
            with ctx:
                with self._autocast():
                    o = self.net(**ids, output_hidden_states=want_hidden)
                kl = R.kl_rows_sum(tl, o.logits, tau) / rows_global
                loss = kl * (tau * tau)
                kl_sum += kl.detach().double()
                if want_hidden:
                    L = len(ths)
                    hterm = 0
                    for l, (hs_, ht_) in enumerate(zip(o.hidden_states[1:], ths)):
                        hterm = hterm + R.sq_norm(hs_.float() - ht_) / den[l].float()
                    hterm = hterm * (hw / L)
                    loss = loss + hterm
                    hid_sum += hterm.detach().double()
                # Gradient reduction averages over ranks; the loss is a sum over them.
                (loss * W).backward()
        env.all_sum(kl_sum)
        env.all_sum(hid_sum)
        gn = R.global_clip_(self.train_params, cfg.clip)
        lr = cfg.lr * R.schedule(s, cfg.steps, cfg.warmup, cfg.min_lr_ratio, cfg.decay)
        for g, scale in zip(self.optim.param_groups, self.group_scales):
            g["lr"] = lr * scale
        self.optim.step()
        kl_v = float(kl_sum) * tau * tau
        loss_v = kl_v + float(hid_sum)
        if not math.isfinite(loss_v):
            raise RuntimeError(f"step {s}: loss is {loss_v}; lower the learning rate")
        return loss_v, kl_v, float(hid_sum), lr, gn

    def _no_sync(self, sync):
        import contextlib

        if sync or not self.env.on:
            if self.cfg.fsdp and self.env.on:
                self.net.set_requires_gradient_sync(True)
            return contextlib.nullcontext()
        if self.cfg.fsdp:
            self.net.set_requires_gradient_sync(False)
            return contextlib.nullcontext()
        return self.net.no_sync()

    # --- evaluation
    @torch.no_grad()
    def evaluate(self):
        """KL(teacher ‖ student) mean over positions, and the student's next-token NLL, on the eval data."""
        env, ids_all = self.env, self.eval_ids
        n = ids_all.shape[0]
        per = max(1, self.cfg.batch // env.world)
        rounds = (n + per * env.world - 1) // (per * env.world)
        kl = torch.zeros((), dtype=torch.float64, device=env.device)
        nll = torch.zeros((), dtype=torch.float64, device=env.device)
        rows = torch.zeros((), dtype=torch.float64, device=env.device)
        preds = torch.zeros((), dtype=torch.float64, device=env.device)
        agree = torch.zeros((), dtype=torch.float64, device=env.device)
        for r in range(rounds):
            lo = (r * env.world + env.rank) * per
            sel = list(range(lo, min(lo + per, n)))
            real = len(sel) > 0
            kw = self._inputs(ids_all, sel if real else [0])
            with self._autocast():
                t = self.teacher(**kw).logits.float()
                s = self.net(**kw).logits.float()
            if not real:
                continue
            kl += R.kl_rows_sum(t, s, 1.0).double()
            rows += t.numel() // t.shape[-1]
            agree += (t.argmax(-1) == s.argmax(-1)).sum().double()
            if not self.images:
                ids = kw["input_ids"]
                lp = torch.log_softmax(s[:, :-1], dim=-1)
                nll += -lp.gather(-1, ids[:, 1:, None]).sum().double()
                preds += ids[:, 1:].numel()
        for x in (kl, nll, rows, preds, agree):
            env.all_sum(x)
        return float(kl / rows), (float(nll / preds) if float(preds) > 0 else 0.0), float(agree / rows)

    # --- the whole run
    def run(self):
        cfg, env = self.cfg, self.env
        self.progress.emit(event="start", steps=cfg.steps, start_step=self.start, tokens_per_step=cfg.batch * self.T,
                           world_size=env.world, device=env.device.type)
        t0 = time.time()
        tokens = self.log[-1]["tokens"] if self.log else 0
        prev = self.log[-1]["elapsed_s"] if self.log else 0.0
        for s in range(self.start, cfg.steps):
            loss, kl, hid, lr, gn = self.step(s)
            tokens += cfg.batch * self.T
            el = prev + time.time() - t0
            rec = {"step": s + 1, "steps": cfg.steps, "loss": loss, "kl": kl, "hidden": hid, "lr": lr,
                   "tokens": tokens, "elapsed_s": el}
            self.log.append(rec)
            self.progress.emit(event="step", **rec)
            if env.rank == 0 and not cfg.progress_json and ((s + 1) % 10 == 0 or s + 1 == cfg.steps):
                _log(f"step {s + 1}/{cfg.steps}  loss {loss:.4f}  kl {kl:.4f}  lr {lr:.3g}  {tokens / max(el, 1e-9):.0f} tok/s")
            if cfg.checkpoint_every > 0 and (s + 1) % cfg.checkpoint_every == 0 and s + 1 < cfg.steps:
                self._save_checkpoint(s + 1)
        eval_kl = None
        if self.eval_ids is not None:
            eval_kl, nll, agreement = self.evaluate()
            self.progress.emit(event="eval", step=cfg.steps, kl=eval_kl, nll=nll, agreement=agreement)
        final = 0.0
        if self.log:
            k = min(10, len(self.log))
            for r in self.log[-k:]:
                final += r["loss"] / k
        arrays = self._stored_arrays()
        if env.rank == 0:
            self._write(arrays, tokens, final, eval_kl)
            for p in (cfg.checkpoint_path,):
                if os.path.exists(p):
                    os.remove(p)
        env.barrier()
        self.progress.emit(event="done", out=cfg.out, steps=cfg.steps, final_loss=final, eval_kl=eval_kl)

    def _write(self, arrays, tokens, final, eval_kl):
        cfg = self.cfg
        mf = self.file.manifest
        info = {"steps": cfg.steps, "tokens": tokens}
        if self.train_source:
            info["data"] = self.train_source
        if self.train_sha:
            info["data_sha256"] = self.train_sha
        info.update({"seed": cfg.seed, "lr": cfg.lr, "batch": cfg.batch, "seq_len": 0 if self.images else self.T, "train": cfg.train,
                     "final_loss": final})
        if eval_kl:
            info["eval_kl"] = eval_kl
            info["eval_data"] = D.data_record(cfg.eval_data)[0]
        if cfg.temperature:
            info["temperature"] = cfg.temperature
        if cfg.hidden_weight:
            info["hidden_weight"] = cfg.hidden_weight
        if cfg.hidden_decay:
            info["hidden_decay"] = True
        prev = mf.obj.get("distill")
        if prev:
            info["steps"] += prev.get("steps", 0)
            info["tokens"] += prev.get("tokens", 0)
        info["engine"] = "torch"
        mf.obj["distill"] = info
        vf.save(vf.VLoRAFile(mf, arrays, self.file.path), cfg.out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass
    try:
        cfg = C.parse(argv)
        for path, flag in ((cfg.init, "INIT_FILE"), (cfg.original, "--original"), (cfg.data, "--data"),
                           (cfg.eval_data, "--eval-data"), (cfg.batch_order, "--batch-order")):
            if path and not os.path.exists(path):
                raise C.UsageError(f"{flag} {path}: no such file or directory")
        outdir = os.path.dirname(os.path.abspath(cfg.out))
        if not os.path.isdir(outdir):
            raise C.UsageError(f"--out {cfg.out}: directory {outdir} does not exist")
        if os.path.abspath(cfg.out) in {os.path.abspath(p) for p in (cfg.original, cfg.data, cfg.eval_data) if p}:
            raise C.UsageError(f"--out {cfg.out} would overwrite an input")
        env = Dist(cfg.device)
        torch.manual_seed(cfg.seed & ((1 << 63) - 1))
        run = Run(cfg, env)
        run.run()
    except SystemExit:
        raise
    except FormatError as e:
        C.die(str(e), 2)
    except KeyboardInterrupt:
        C.die("interrupted (the last checkpoint is kept; rerun with --resume)", 1)
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc(file=sys.stderr)
        C.die(f"{type(e).__name__}: {e}", 1)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
            # Interpreter teardown after a gloo process group can abort in
            # a destructor of one of its threads ("terminate called without
            # an active exception") after the work is done; end the
            # process here instead, with the outcome already decided.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(_exit_code(sys.exc_info()[1]))
    return 0


def _exit_code(exc) -> int:
    """The exit status for a run ending with exc (None: success)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
