#!/usr/bin/env bash
# gpu_check.sh — spore.dist's GPU check (called by scripts/gpu_check.sh where there is one): builds
# the CUDA variant of libspore_dist.so and runs the NCCL all-reduce with two processes sharing
# GPU 0, or says why it skips.
set -uo pipefail
cd "$(dirname "$0")/../.."
command -v mpirun >/dev/null || { echo "dist gpu_check: SKIPPED: mpirun is not installed (make deps)"; exit 0; }
make -s CUDA=1 dist || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
SPORE_DIST_LIB=$PWD/build/cuda/libspore_dist.so timeout 120 mpirun -np 2 -x SPORE_DIST_LIB luajit scripts/dist/nccl_check.lua
