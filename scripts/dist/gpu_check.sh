#!/usr/bin/env bash
# gpu_check.sh — spore.dist on a GPU machine (scripts/gpu_check.sh calls it; by hand:
# `bash scripts/dist/gpu_check.sh`). Two processes share the machine's GPUs (GPU local-rank mod
# GPUs: both on GPU 0 when there is one):
#   1. the CUDA build of libspore_dist.so and libspore.so; nccl_probe.lua (NCCL built, loadable,
#      a GPU seen, the engine's device-region accessor found);
#   2. nccl_check.lua: an NCCL all-reduce of 1M floats in device memory, checked;
#   3. LeNet5 data parallel on the GPU (check.lua equiv, 12 steps): -np 2 at batch 8 over NCCL
#      against -np 1 at batch 16 on the GPU (max relative difference < 1e-4), and against the
#      same -np 2 run on the CPU over MPI (< 1e-3: cuDNN/cuBLAS against the CPU kernels).
# Ends with one JSON line: {"status":"ok"|"failed"|"skipped", ...}; a missing mpirun, NCCL or
# GPU, or an NCCL that refuses two ranks on one GPU, is a skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/../.."
clean() { tr -d '"\\' | tr '\n' ' ' | cut -c1-300; }
skip() { echo "dist gpu_check: SKIPPED: $*" >&2; printf '{"status":"skipped","why":"%s"}\n' "$(echo "$*" | clean)"; exit 0; }
failed() { echo "dist gpu_check: FAILED: $*" >&2; printf '{"status":"failed","why":"%s"}\n' "$(echo "$*" | clean)"; exit 1; }
command -v mpirun >/dev/null || skip "mpirun is not installed (make deps)"
make -s CUDA=1 NVCC="${NVCC_BIN:-nvcc}" NVCC_EXTRA="${NVCC_EXTRA:-}" dist build/cuda/libspore.so >/dev/null 2>&1 \
  || failed "make CUDA=1 dist build/cuda/libspore.so failed"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export SPORE_DIST_LIB=$PWD/build/cuda/libspore_dist.so SPORE_LIB=$PWD/build/cuda/libspore.so NCCL_DEBUG=${NCCL_DEBUG:-WARN}
X="-x SPORE_DIST_LIB -x SPORE_LIB -x NCCL_DEBUG -x SPORE_DIST_CHECK_DEVICE"
probe=$(luajit scripts/dist/nccl_probe.lua 2>&1 | tail -1)
echo "dist gpu_check: probe: $probe" >&2
echo "$probe" | grep -q '"usable":true' || skip "NCCL is not usable here: $probe"
echo "$probe" | grep -q '"bind":true' || failed "the NCCL path cannot reach the engine: $probe"
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)

out=$(timeout 120 mpirun -np 2 $X luajit scripts/dist/nccl_check.lua 2>&1); rc=$?
echo "$out" | tail -5 >&2
if [ $rc -ne 0 ]; then
  if echo "$out" | grep -qi "duplicate GPU"; then
    skip "NCCL refuses two ranks on one GPU ($ngpu GPU(s) here): $(echo "$out" | grep -i -m1 'duplicate GPU')"
  fi
  failed "nccl_check.lua exit $rc: $(echo "$out" | tail -2)"
fi

D=$(mktemp -d)
mkdir -p "$D/nccl2" "$D/gpu1" "$D/cpu2"
run() { # DIR NP BATCH DEVICE
  SPORE_DIST_CHECK_DEVICE=$4 timeout 200 mpirun -np "$2" $X luajit scripts/dist/check.lua equiv "$D/$1" "$3" 12 >"$D/$1.log" 2>&1 \
    || failed "check.lua equiv $1 (-np $2, $4) exit $?: $(tail -2 "$D/$1.log")"
}
run nccl2 2 8 gpu
grep -q '"backend":"nccl"' "$D/nccl2.log" || failed "the 2-process GPU run did not use NCCL: $(grep -m1 backend "$D/nccl2.log")"
run gpu1 1 16 gpu
run cpu2 2 8 cpu
rel() { luajit scripts/dist/compare.lua "$1" "$2" '^[cf]' | sed -E 's/.*max relative difference ([^ ;]+).*/\1/'; }
g=$(rel "$D/nccl2/final.ckpt" "$D/gpu1/final.ckpt")
c=$(rel "$D/nccl2/final.ckpt" "$D/cpu2/final.ckpt")
echo "dist gpu_check: LeNet5 12 steps, NCCL -np 2 b8 vs GPU -np 1 b16: $g; vs CPU MPI -np 2 b8: $c" >&2
ok=$(awk -v g="$g" -v c="$c" 'BEGIN { print (g < 1e-4 && c < 1e-3) ? "ok" : "failed" }')
rm -rf "$D"
printf '{"status":"%s","gpus":%s,"nccl2_vs_gpu1":%s,"nccl2_vs_cpu_mpi2":%s}\n' "$ok" "${ngpu:-0}" "$g" "$c"
[ "$ok" = ok ]
