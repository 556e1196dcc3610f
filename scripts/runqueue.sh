#!/usr/bin/env bash
# Runs a command and reports, from the scheduler's per-thread statistics
# (/proc/PID/task/*/schedstat), how long its threads ran on a CPU and how
# long they waited, runnable, for one:
#
#   scripts/runqueue.sh CMD [ARGS...]   # prints "oncpu_s=… runqueue_s=… wall_s=…" on stderr
#
# On a shared machine a program's wall time says little about what it would
# take alone; on_cpu + runqueue is the time its threads wanted a CPU, so
# (on_cpu + runqueue) / wall is the number of cores it would keep busy on an
# idle machine. Threads that exit before the last poll are not counted.
set -uo pipefail
start=$(date +%s.%N)
"$@" &
pid=$!
oncpu=0
queued=0
while kill -0 "$pid" 2>/dev/null; do
  read -r a b < <(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{c += $1; w += $2} END {printf "%.0f %.0f\n", c, w}')
  # Keep the largest sums: while the process exits, its threads vanish one by one.
  if awk -v a="${a:-0}" -v o="$oncpu" 'BEGIN {exit !(a > o)}'; then oncpu=$a; queued=$b; fi
  sleep 0.2
done
wait "$pid"
rc=$?
end=$(date +%s.%N)
awk -v c="$oncpu" -v w="$queued" -v s="$start" -v e="$end" 'BEGIN {
  printf "oncpu_s=%.1f runqueue_s=%.1f wall_s=%.1f cores_wanted=%.2f\n", c/1e9, w/1e9, e-s, (c+w)/1e9/(e-s) }' >&2
exit $rc
