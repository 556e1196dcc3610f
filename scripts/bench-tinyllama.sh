#!/usr/bin/env bash
# Memory and wall-time benchmark of compress on a synthetic TinyLlama-shaped
# BF16 checkpoint (22 layers, hidden 2048, intermediate 5632, 32/4 heads,
# vocab 32000: 1.1 B parameters, 2.2 GB). The checkpoint is generated into
# $WORK (default /tmp/vlora-bench) and never committed.
#
#   scripts/bench-tinyllama.sh            # both base modes, K=4 r=64, randomized SVD
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/vlora-bench}
mkdir -p "$WORK"
go build -o "$WORK/vlora-convert" ./cmd/vlora-convert
if [ ! -f "$WORK/tinyllama/model.safetensors" ]; then
  go run ./internal/tools/mksynth -out "$WORK/tinyllama" -dtype bf16
fi
for base in first mean; do
  rm -rf "$WORK/out-$base"
  /usr/bin/time -v "$WORK/vlora-convert" compress --model "$WORK/tinyllama" --out "$WORK/out-$base" \
      -k 4 -r 64 --base "$base" --svd randomized --distill-steps 0 -q 2> "$WORK/time-$base.log" > "$WORK/out-$base.txt"
  wall=$(grep "Elapsed (wall clock)" "$WORK/time-$base.log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$WORK/time-$base.log" | awk '{print $NF}')
  echo "base=$base wall=$wall peak_rss_kib=$rss ($((rss / 1024)) MiB)"
  grep -E "parameters|bytes" "$WORK/out-$base.txt"
done
