#!/usr/bin/env bash
# The --target-bits sweep of docs/quality.md: each named run compresses with
# the default recipe (1.2 M training tokens) and verifies the file on the
# held-out sequences with the same-size round-to-nearest baseline.
#
#   scripts/bits-sweep.sh VC OUTDIR RUN...
#
# VC is the vlora-convert binary. A run is MODEL:METHOD:SIZE with MODEL bl
# (bytellama; data ../shared/data/stdlib-bytes, evaluated on the first 64
# sequences of eval.safetensors) or ts (tinystories260K; calibrated and
# distilled on the first 186 sequences of its calib.safetensors and
# evaluated on the last 64, split by scripts/holdout.py into OUTDIR), METHOD
# bits (--target-bits SIZE, the default GPTQ start), bitsrtn (the same with
# --rounding rtn: the quantized tensors start rounded to nearest) or qat
# (every layer its own base, uniform --dtype SIZE, e.g. int4: dense
# quantization-aware training from round to nearest). Each run
# writes OUTDIR/RUN/compress.json and verify.json. Flags in $EXTRA (e.g.
# "--tokens 307200 --augment 256") are added to every compress, and $SUFFIX
# to every run's directory name.
set -euo pipefail
vc=$1 outdir=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/../shared
mkdir -p "$outdir"
if [[ ! -f $outdir/ts-train.safetensors ]]; then
  "$root/.venv/bin/python" "$root/scripts/holdout.py" "$shared/data/tinystories260K/calib.safetensors" \
    "$outdir/ts-train.safetensors" "$outdir/ts-heldout.safetensors" 64
fi
for run in "$@"; do
  IFS=: read -r m method size <<<"$run"
  case $m in
    bl) model=$shared/models/bytellama train=$shared/data/stdlib-bytes/calib.safetensors eval=$shared/data/stdlib-bytes/eval.safetensors ;;
    ts) model=$shared/models/tinystories260K train=$outdir/ts-train.safetensors eval=$outdir/ts-heldout.safetensors ;;
    *) echo "unknown model $m" >&2; exit 2 ;;
  esac
  case $method in
    bits) flags=(--target-bits "$size") ;;
    bitsrtn) flags=(--target-bits "$size" --rounding rtn) ;;
    qat) flags=(-k 1 --energy 1 --dtype "$size") ;;
    *) echo "unknown method $method" >&2; exit 2 ;;
  esac
  dir=$outdir/$m-$method-$size${SUFFIX:-}
  rm -rf "$dir"
  echo "== $run: compress ${flags[*]}" >&2
  "$vc" compress --model "$model" --out "$dir" --data "$train" --eval-data "$eval" "${flags[@]}" ${EXTRA:-} --json -q \
    >"$dir.compress.json" 2>"$dir.compress.log"
  mv "$dir.compress.json" "$dir.compress.log" "$dir/"
  "$vc" verify --original "$model" --compressed "$dir" --data "$eval" --samples 64 --json >"$dir/verify.json" 2>"$dir/verify.log" || true
  echo "== $run: done" >&2
done
