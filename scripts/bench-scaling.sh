#!/usr/bin/env bash
# How the cost of each stage grows with the model: wall time, CPU time and
# peak RSS of compress, verify (fixed tokens) and one distillation step on
# Llama-shaped checkpoints from bytellama (1.5 M) to TinyLlama (1.1 B).
# The synthetic checkpoints are generated with internal/tools/mksynth into
# $WORK (default /tmp/vlora-bench) and never committed. Writes
# $WORK/scaling.csv and docs/scaling.png.
#
#   scripts/bench-scaling.sh [SHAPE...]   # default: bytellama 30m smollm-135m 500m tinyllama
#
# Stages, each under /usr/bin/time -v:
#   compress  -k 4 -r 64 --base mean --svd randomized --distill-steps 0
#   verify    128 tokens of ../shared/data/stdlib-bytes/eval.safetensors (2 × 64)
#   distill   1 step, batch 4 × 256 of calib.safetensors, default recipe (--train bases,
#             hidden-state term, --recompute when RECOMPUTE=1), evaluation on 1 sequence
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/vlora-bench}
DATA=${DATA:-../shared/data/stdlib-bytes}
mkdir -p "$WORK"
go build -o "$WORK/vlora-convert" ./cmd/vlora-convert
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(bytellama 30m smollm-135m 500m tinyllama)
csv=$WORK/scaling.csv
[ -f "$csv" ] || echo "model,params,stage,wall_s,peak_rss_mib,cpu_s,load1" > "$csv"

# measure NAME PARAMS STAGE CMD...: runs CMD under /usr/bin/time -v and appends a CSV row.
measure() {
  local name=$1 params=$2 stg=$3
  shift 3
  local log=$WORK/time-$name-$stg.log load
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$@" > "$WORK/out-$name-$stg.txt" 2> "$log"
  local wall rss cpu
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}' | awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s}')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print int($NF / 1024)}')
  cpu=$(grep -E "(User|System) time" "$log" | awk '{s += $NF} END {print s}')
  echo "$name,$params,$stg,$wall,$rss,$cpu,$load" | tee -a "$csv"
}

for s in "${shapes[@]}"; do
  if [ "$s" = bytellama ]; then
    model=../shared/models/bytellama
  else
    model=$WORK/$s
    [ -f "$model/model.safetensors" ] || go run ./internal/tools/mksynth -out "$model" -shape "$s" -dtype bf16
  fi
  out=$WORK/vlora-$s
  rm -rf "$out" "$out-distilled"
  measure "$s" 0 compress "$WORK/vlora-convert" compress --model "$model" --out "$out" -k 4 -r 64 \
      --base mean --svd randomized --distill-steps 0 -q
  params=$("$WORK/vlora-convert" inspect "$out" --json | jq .params_original)
  sed -i "s/^$s,0,compress,/$s,$params,compress,/" "$csv"
  measure "$s" "$params" verify "$WORK/vlora-convert" verify --original "$model" --compressed "$out" \
      --data "$DATA/eval.safetensors" --samples 2 --seq-len 64 -q
  measure "$s" "$params" distill-step "$WORK/vlora-convert" distill "$out" --original "$model" --out "$out-distilled" \
      --steps 1 --batch 4 --seq-len 256 --data "$DATA/calib.safetensors" --eval-data "$DATA/eval.safetensors" \
      --eval-samples 1 --checkpoint-every 0 ${RECOMPUTE:+--recompute} -q --json
done
go run ./internal/tools/scaleplot -in "$csv" -out docs/scaling.png
