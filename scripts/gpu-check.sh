#!/usr/bin/env bash
# The GPU check of the PyTorch distillation engine, on one accelerator:
#   1. bytellama (../shared/models/bytellama), the 10 M-token recipe of
#      docs/quality.md "Long runs" (--train all --augment 16384 --batch 16
#      --hidden-decay), from the default compress recipe's file, then
#      vlora-convert verify on the held-out bytes;
#   2. the synthetic 1.1 B TinyLlama-shaped pair (internal/tools/mksynth, BF16;
#      compress -k 4 -r 64 --base mean --svd randomized), TOKENS_1B tokens of
#      random in-vocabulary sequences (the weights are random: the KL printed
#      is the engine's held-out KL on the same kind of data, a smoke figure).
# For each it prints tokens/s (teacher and student, from the engine's step
# events), the peak accelerator memory (torch.cuda.max_memory_allocated as the
# engine reports it, else the peak of nvidia-smi samples of the device),
# MFU against the H200's dense bf16 peak (989 TFLOPS) counting 6·N per token
# for the student and 2·N for the teacher's forward (N: the original's
# parameters without the embedding table; attention's T² term left out), and
# the KL after the token budget.
#
#   scripts/gpu-check.sh               # on the GPU, bf16 (well under 10 minutes on one H200)
#   scripts/gpu-check.sh --cpu-smoke   # the same path on the CPU with tiny budgets, float32
#                                      # (bytellama compressed with -k 4 -r 16 --base mean)
#
# Environment: WORK (default /tmp/vlora-gpu-check), SHARED (default ../shared),
# TOKENS_BYTELLAMA (default 10000000), TOKENS_1B (default 1000000),
# PEAK_TFLOPS (default 989).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=gpu
case "${1:-}" in
  --cpu-smoke) mode=cpu ;;
  "") ;;
  *) echo "usage: scripts/gpu-check.sh [--cpu-smoke]" >&2; exit 2 ;;
esac
WORK=${WORK:-/tmp/vlora-gpu-check}
SHARED=${SHARED:-$root/../shared}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
mkdir -p "$WORK"
t_start=$(date +%s)

scripts/pyenv.sh
py=$root/.venv/bin/python
export PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH}
vc=$WORK/vlora-convert
go build -o "$vc" ./cmd/vlora-convert

if [ "$mode" = gpu ]; then
  "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    { echo "gpu-check: torch sees no CUDA device; run with --cpu-smoke for the CPU path" >&2; exit 1; }
  engine=(--engine torch --device cuda --engine-dtype bf16)
  tokens_byte=${TOKENS_BYTELLAMA:-10000000}; augment=16384
  byte_recipe=()  # the default recipe, as in docs/quality.md
  tokens_1b=${TOKENS_1B:-1000000}; synth=(-shape tinyllama); seq_1b=512; batch_1b=16
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  engine=(--engine torch --device cpu --engine-dtype float32)
  tokens_byte=${TOKENS_BYTELLAMA:-8192}; augment=16
  byte_recipe=(-k 4 -r 16 --base mean)  # no calibration passes: the engine's path is what is smoke-tested
  tokens_1b=${TOKENS_1B:-1024}; synth=(-shape tinyllama -layers 2 -hidden 256 -intermediate 688 -heads 8 -kv-heads 4 -vocab 512); seq_1b=64; batch_1b=4
fi

# sampler runs nvidia-smi in the background, one sample of the device's used
# memory every 200 ms, into $1 (GPU mode only).
sampler_pid=
start_sampler() {
  sampler_pid=
  if [ "$mode" = gpu ] && command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$1" 2>/dev/null &
    sampler_pid=$!
  fi
}
stop_sampler() { if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; fi; }

# jget FILE KEY prints a number of a JSON file, to 4 decimals.
jget() { "$py" -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("n/a" if v is None else "%.4f" % v)' "$1" "$2"; }

# report NAME SUMMARY_JSON ORIGINAL_DIR SAMPLES KL prints the figures of one run.
report() {
  "$py" - "$@" "$PEAK_TFLOPS" "$mode" <<'PY'
import json, struct, sys, os
name, summary, original, samples, kl, peak_tflops, mode = sys.argv[1:8]
s = json.load(open(summary))
# Parameters the matrix multiplications see: every tensor of the original but
# the embedding table (a lookup).
n = 0
for f in sorted(os.listdir(original)):
    if not f.endswith(".safetensors"):
        continue
    with open(os.path.join(original, f), "rb") as fh:
        hlen = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(hlen))
    for k, v in header.items():
        if k == "__metadata__" or "embed_tokens" in k or k.endswith("wte.weight") or k.endswith("wpe.weight"):
            continue
        c = 1
        for d in v["shape"]:
            c *= d
        n += c
tps = s.get("tokens_per_second") or 0.0
flops_per_token = 6 * n + 2 * n  # student forward+backward, teacher forward
done = s.get("engine") or {}
peak = None
for key in ("max_memory_allocated", "peak_memory_bytes", "cuda_max_memory_allocated", "max_memory_allocated_bytes"):
    if isinstance(done.get(key), (int, float)):
        peak, src = float(done[key]), "torch.cuda.max_memory_allocated"
        break
if peak is None and os.path.exists(samples) and os.path.getsize(samples) > 0:
    vals = [float(x) for x in open(samples).read().split() if x.strip().replace(".", "").isdigit()]
    if vals:
        peak, src = max(vals) * 2**20, "nvidia-smi samples of the device (includes the CUDA context and the allocator's cache)"
print(f"== {name}")
print(f"steps {s['steps']}, tokens {s['tokens']}, train {s['train_seconds']:.1f} s, tokens/s {tps:,.0f} (teacher and student)")
print(f"matmul parameters N = {n:,}; FLOPs per token 8·N = {flops_per_token:.3e}")
if mode == "gpu":
    mfu = tps * flops_per_token / (float(peak_tflops) * 1e12)
    print(f"MFU {100 * mfu:.1f}% of {peak_tflops} TFLOPS (bf16 dense)")
else:
    print("MFU n/a (CPU smoke run)")
print(f"peak accelerator memory: " + (f"{peak / 2**30:.2f} GiB ({src})" if peak is not None else "n/a"))
print(f"final loss {s['final_loss']:.4f}; KL after the budget {kl}")
PY
}

# 1. bytellama, the 10 M-token recipe.
byte_model=$SHARED/models/bytellama
byte_data=$SHARED/data/stdlib-bytes
if [ -d "$byte_model" ]; then
  if [ ! -f "$WORK/byte-init-$mode/model.vlora.safetensors" ]; then
    "$vc" compress --model "$byte_model" --data "$byte_data/calib.safetensors" --out "$WORK/byte-init-$mode" \
        "${byte_recipe[@]}" --distill-steps 0 -q > /dev/null
  fi
  rm -rf "$WORK/byte-out"
  start_sampler "$WORK/byte-mem.txt"
  t0=$(date +%s)
  "$vc" distill "$WORK/byte-init-$mode" --out "$WORK/byte-out" --original "$byte_model" --train all \
      --data "$byte_data/calib.safetensors" --augment "$augment" --eval-data "$byte_data/eval.safetensors" \
      --tokens "$tokens_byte" --batch 16 --hidden-decay --checkpoint-every 0 "${engine[@]}" --json -q > "$WORK/byte-summary.json"
  t1=$(date +%s)
  stop_sampler
  "$vc" verify --original "$byte_model" --compressed "$WORK/byte-out" --data "$byte_data/eval.safetensors" \
      --baseline none --json -q > "$WORK/byte-verify.json"
  kl="$(jget "$WORK/byte-verify.json" kl_mean) (verify on the held-out bytes; NLL $(jget "$WORK/byte-verify.json" nll_compressed), original $(jget "$WORK/byte-verify.json" nll_original))"
  report "bytellama, $tokens_byte tokens (wall $((t1 - t0)) s with loading and augmentation)" "$WORK/byte-summary.json" "$byte_model" "$WORK/byte-mem.txt" "$kl"
else
  echo "== bytellama: $byte_model is absent (set SHARED); skipped" >&2
fi

# 2. The synthetic 1.1 B pair.
pair=$WORK/synth-$mode
if [ ! -f "$pair/orig/model.safetensors" ]; then
  go run ./internal/tools/mksynth -out "$pair/orig" -dtype bf16 "${synth[@]}"
fi
if [ ! -f "$pair/init/model.vlora.safetensors" ]; then
  "$vc" compress --model "$pair/orig" --out "$pair/init" -k 4 -r 64 --base mean --svd randomized --distill-steps 0 -q > /dev/null
fi
"$py" - "$pair" "$seq_1b" <<'PY'
import json, os, sys
import torch
from safetensors.torch import save_file
pair, t = sys.argv[1], int(sys.argv[2])
vocab = json.load(open(os.path.join(pair, "orig", "config.json")))["vocab_size"]
g = torch.Generator().manual_seed(1)
for name, n in (("train", 512), ("eval", 16)):
    save_file({"tokens": torch.randint(0, vocab, (n, t), generator=g, dtype=torch.int32)}, os.path.join(pair, name + ".safetensors"))
PY
rm -rf "$pair/out"
start_sampler "$WORK/synth-mem.txt"
t0=$(date +%s)
"$vc" distill "$pair/init" --out "$pair/out" --original "$pair/orig" --data "$pair/train.safetensors" \
    --eval-data "$pair/eval.safetensors" --tokens "$tokens_1b" --batch "$batch_1b" --checkpoint-every 0 \
    "${engine[@]}" --json -q > "$WORK/synth-summary.json"
t1=$(date +%s)
stop_sampler
kl="$(jget "$WORK/synth-summary.json" eval_kl) (the engine's held-out evaluation, random tokens)"
report "synthetic TinyLlama pair ($("$py" -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["num_hidden_layers"], "layers, hidden", c["hidden_size"])' "$pair/orig/config.json")), $tokens_1b tokens (wall $((t1 - t0)) s with loading)" \
    "$WORK/synth-summary.json" "$pair/orig" "$WORK/synth-mem.txt" "$kl"
echo "gpu-check: $mode run done in $(( $(date +%s) - t_start )) s"
