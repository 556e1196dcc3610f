#!/usr/bin/env bash
# Speed against the PyTorch CPU peer, measured back to back in one run so the
# ratio is meaningful on a noisy machine. Needs Debian's python3-torch and
# python3-numpy for the peer (../shared/reference/torchref.py).
#
#   scripts/bench-vs-torch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
echo "== PyTorch peer: torchref.py bench --parts ab (OpenBLAS SkylakeX, 2 threads)"
(cd "$SHARED" && OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 /usr/bin/python3 reference/torchref.py bench --parts ab --reps 3)
echo "== vlora-convert: forward 32x256 and distillation step 16x256"
go test ./transformer -run '^$' -bench 'ForwardBytellama' -benchtime 8x -count 3
go test ./distill -run '^$' -bench 'DistillStepBytellama' -benchtime 20x -count 2
echo "== PyTorch peer again (drift check)"
(cd "$SHARED" && OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 /usr/bin/python3 reference/torchref.py bench --parts ab --reps 3)
