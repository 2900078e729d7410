#!/usr/bin/env bash
# kill_test.sh OUT [SIGNAL] [AFTER_S] [TIMEOUT_S=20] — spore.dist failure handling, end to end: `mpirun -np 2`
# fine-tunes LeNet5 from the MindSpore checkpoint for 3 epochs (batch 8 per rank); once the
# epoch-1 checkpoint exists and AFTER_S more seconds have passed, rank 1 gets SIGNAL (KILL: it
# dies; STOP: it hangs). The run must end within 30 s with a non-zero exit and a message; then
# `mpirun -np 1` resumes from the last checkpoint (--load-optimizer) and finishes.
set -u
OUT=${1:?OUT}; SIG=${2:-KILL}; AFTER=${3:-1}; TIMEOUT=${4:-20}
F=${SPORE_FIXTURES:-/work/shared/fixtures}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$OUT"; mkdir -p "$OUT"
mpirun -np 2 luajit "$ROOT/scripts/finetune.lua" --distributed --dist-timeout "$TIMEOUT" --ckpt "$F/mindspore/checkpoint_lenet-1_1875.ckpt" \
  --dataset mnist --data "$F/mnist" --batch 8 --epochs 3 --out "$OUT/run" --no-plot >"$OUT/run.log" 2>&1 &
MPIRUN=$!
for _ in $(seq 600); do ls "$OUT"/run/*.ckpt >/dev/null 2>&1 && break; sleep 0.1; done
sleep "$AFTER"
PID1=""
for p in $(pgrep -P "$MPIRUN" luajit; pgrep luajit); do
  if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' &&
     tr '\0' '\n' </proc/$p/environ | grep -q "^PWD=" && grep -q -- "$OUT/run" /proc/$p/cmdline 2>/dev/null; then PID1=$p; fi
done
[ -n "$PID1" ] || { echo "kill_test: rank 1 not found"; kill "$MPIRUN"; exit 2; }
T0=$(date +%s.%N)
kill -"$SIG" "$PID1"
wait "$MPIRUN"; RC=$?
T1=$(date +%s.%N)
echo "kill_test: rank 1 (pid $PID1) got SIG$SIG; mpirun exited $RC after $(echo "$T1 - $T0" | bc) s"
grep -E "spore.dist|rank 1|finetune.lua: [^-e]" "$OUT/run.log" | grep -v "^finetune.lua: --distributed" | head -5
LAST=$(ls -t "$OUT"/run/*.ckpt | head -1)
echo "kill_test: resuming with -np 1 from $LAST"
mpirun -np 1 luajit "$ROOT/scripts/finetune.lua" --distributed --ckpt "$LAST" --load-optimizer --dataset mnist --data "$F/mnist" \
  --batch 16 --epochs 1 --out "$OUT/resume" --no-plot --quiet >"$OUT/resume.log" 2>&1
RC2=$?
grep "resuming" "$OUT/resume.log"
echo "kill_test: resume exited $RC2: $(tail -1 "$OUT/resume.log" | grep -o '"accuracy":[0-9.]*,"global_step":[0-9]*')"
