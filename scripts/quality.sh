#!/usr/bin/env bash
# Distillation quality matrix on bytellama (../shared): base first|mean ×
# rank 16|32 with calibration data, plus the data-free mode, each 300 steps
# at batch 16×256, evaluated on the first 64 eval sequences. Prints one
# Markdown table row per run. Extra arguments go to every compress call.
#
#   scripts/quality.sh                   # the defaults
#   scripts/quality.sh --hidden-weight 0 --clip 0   # the reference recipe
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
WORK=${WORK:-/tmp/vlora-quality}
mkdir -p "$WORK"
go build -o "$WORK/vlora-convert" ./cmd/vlora-convert
VC="$WORK/vlora-convert"
M="$SHARED/models/bytellama"
CAL="$SHARED/data/stdlib-bytes/calib.safetensors"
EVAL="$SHARED/data/stdlib-bytes/eval.safetensors"
row() { # name, out dir, seconds
  local j="$2/verify.json"
  "$VC" verify --original "$M" --compressed "$2" --data "$EVAL" --samples 64 --json -q > "$j"
  python3 - "$1" "$j" "$2/summary.json" "$3" <<'PY'
import json, sys
name, v, s, secs = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4])
print(f"| {name} | {v['params_compressed']:,} | {v['kl_mean']:.4f} | {v['kl_p99']:.3f} | {v['top1_agreement']:.4f} | "
      f"{v['nll_compressed']:.4f} | {v['nll_original']:.4f} | {s.get('tokens_per_second', 0):,.0f} | {secs:.0f} |")
PY
}
echo "| run | stored params | KL mean | KL p99 | top-1 agree | NLL | teacher NLL | distill tok/s | wall s |"
echo "|---|---|---|---|---|---|---|---|---|"
for base in first mean; do
  for r in 16 32; do
    out="$WORK/$base-r$r"
    t0=$(date +%s)
    "$VC" compress --model "$M" --out "$out" -k 8 -r "$r" --base "$base" --data "$CAL" --eval-data "$EVAL" \
        --distill-steps 300 --batch 16 --lr 2e-3 --json -q "$@" > "$out.json"
    cp "$out.json" "$out/summary.json"
    row "$base r$r (calib data)" "$out" $(( $(date +%s) - t0 ))
  done
done
out="$WORK/mean-r32-datafree"
t0=$(date +%s)
"$VC" compress --model "$M" --out "$out" -k 8 -r 32 --base mean --samples 256 --seq-len 256 \
    --distill-steps 300 --batch 16 --lr 2e-3 --json -q "$@" > "$out.json"
cp "$out.json" "$out/summary.json"
row "mean r32 (data-free, 256 sampled seqs)" "$out" $(( $(date +%s) - t0 ))
