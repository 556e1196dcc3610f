#!/usr/bin/env bash
# Decoding speed and peak memory of `generate`'s runtime (model.Stored) on
# the synthetic TinyLlama-shaped BF16 checkpoint (1.1 B parameters) and its
# VLoRA files (K=4, r=64, base mean, randomized SVD, no distillation) in
# BF16 and int4, and on bytellama (stored in BF16) with the same recipe:
# tokens/s of 128 greedy tokens after a 32-token prompt, 2 threads, peak RSS
# (/usr/bin/time -v), and the bound from the measured streaming-read
# bandwidth (and the read bandwidth by working-set size, for the bounds that
# count a VLoRA base reused from the cache). Everything is written under $WORK (default /tmp/vlora-decode)
# and never committed.
#
#   scripts/bench-decode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/vlora-decode}
mkdir -p "$WORK"
go build -o "$WORK/vlora-convert" ./cmd/vlora-convert
go build -o "$WORK/decodebench" ./internal/tools/decodebench
if [ ! -f "$WORK/tinyllama/model.safetensors" ]; then
  go run ./internal/tools/mksynth -out "$WORK/tinyllama" -dtype bf16
fi
if [ ! -f "$WORK/bytellama-bf16/model.safetensors" ]; then
  mkdir -p "$WORK/bytellama-bf16"
  cp ../shared/models/bytellama/*.json "$WORK/bytellama-bf16/"
  "${PYTHON:-python3}" -c "
from safetensors.torch import load_file, save_file
import torch
t = load_file('../shared/models/bytellama/model.safetensors')
save_file({k: v.to(torch.bfloat16).contiguous() for k, v in t.items()}, '$WORK/bytellama-bf16/model.safetensors')"
fi
for src in tinyllama bytellama-bf16; do
  for dt in bf16 int4; do
    out="$WORK/$src-vlora-$dt"
    [ -f "$out/model.vlora.safetensors" ] || "$WORK/vlora-convert" compress --model "$WORK/$src" --out "$out" \
        -k 4 -r 64 --base mean --svd randomized --distill-steps 0 --dtype "$dt" -q
  done
done
probe=$("$WORK/decodebench" -measure-bandwidth -threads 2 -working-sets 2,16,32,64,96,200,2048)
bw=$(echo "$probe" | sed 's/.*"read_gb_per_s":\([0-9.]*\),"threads".*/\1/')
echo "streaming-read bandwidth, 2 threads: $bw GB/s"
# The read bandwidth by working-set size (MiB): the cache's rate below its
# effective size, memory's above, for the cache-aware bounds of docs/benchmarks.md.
echo "by working set: $probe"
for m in tinyllama tinyllama-vlora-bf16 tinyllama-vlora-int4 bytellama-bf16 bytellama-vlora-bf16 bytellama-vlora-int4; do
  /usr/bin/time -v "$WORK/decodebench" -model "$WORK/$m" -threads 2 -prompt 32 -tokens 128 -bandwidth "$bw" \
      2> "$WORK/time-$m.log"
  echo "peak_rss_kib=$(grep 'Maximum resident set size' "$WORK/time-$m.log" | awk '{print $NF}')"
done
