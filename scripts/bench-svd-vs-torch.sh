#!/usr/bin/env bash
# The SVD stage of compress against PyTorch on the same checkpoint, in one
# run: scripts/torch-svd-peer.py (torch.svd_lowrank(q=r+10, niter=4) on every
# increment of a mean-base compound, float32, 2 threads, OpenBLAS at its
# widest kernel), then
#   vlora-convert compress -k K -r R --base mean --svd randomized --distill-steps 0
# under /usr/bin/time -v, each under scripts/runqueue.sh (CPU time and
# run-queue wait of its threads: the cores it would keep busy alone). Needs Debian's python3-torch, python3-numpy and
# libopenblas0-pthread.
#
#   scripts/bench-svd-vs-torch.sh [MODEL_DIR]   # default: the synthetic TinyLlama of bench-tinyllama.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/vlora-bench}
K=${K:-4}
R=${R:-64}
mkdir -p "$WORK"
MODEL=${1:-$WORK/tinyllama}
if [ ! -f "$MODEL/model.safetensors" ]; then
  go run ./internal/tools/mksynth -out "$MODEL" -dtype bf16
fi
go build -o "$WORK/vlora-convert" ./cmd/vlora-convert
if grep -q avx512f /proc/cpuinfo; then core=SkylakeX; else core=Haswell; fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
OPENBLAS_CORETYPE=$core OMP_NUM_THREADS=2 scripts/runqueue.sh /usr/bin/python3 scripts/torch-svd-peer.py "$MODEL" -k "$K" -r "$R" --threads 2
echo "load average between: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/out-svd"
/usr/bin/time -v scripts/runqueue.sh "$WORK/vlora-convert" compress --model "$MODEL" --out "$WORK/out-svd" -k "$K" -r "$R" \
    --base mean --svd randomized --distill-steps 0 -q 2> "$WORK/time-svd.log" > /dev/null
wall=$(grep "Elapsed (wall clock)" "$WORK/time-svd.log" | awk '{print $NF}')
rss=$(grep "Maximum resident set size" "$WORK/time-svd.log" | awk '{print $NF}')
cpu=$(grep -E "(User|System) time" "$WORK/time-svd.log" | awk '{s += $NF} END {print s}')
echo "vlora-convert compress: wall=$wall cpu_s=$cpu peak_rss=$((rss / 1024)) MiB $(grep oncpu_s "$WORK/time-svd.log")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
