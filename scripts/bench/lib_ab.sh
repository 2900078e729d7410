#!/usr/bin/env bash
# lib_ab.sh LIB_A LIB_B [rounds=5] [workloads] — spore's figures (scripts/bench/nn_spore.lua,
# one run per round) with two builds of libspore, alternating round by round so that load
# from other processes hits both alike; one JSON line per figure with both medians and
# ratio = B/A (images/s: > 1 is B faster; ms: < 1 is B faster). For example the OpenBLAS
# threading choice: make BUILD=build/pth BLAS=pthread build/pth/libspore.so, then
#   bash scripts/bench/lib_ab.sh build/pth/libspore.so build/libspore.so 5 lenet5,resnet50_forward_b1
# Each build keeps its own default settings (e.g. nn_omp follows the BLAS build).
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$(realpath "${1:?usage: lib_ab.sh LIB_A LIB_B [rounds] [workloads]}"); B=$(realpath "${2:?LIB_B}")
ROUNDS=${3:-5}; ONLY=${4:-}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= ROUNDS; r++)); do
  SPORE_LIB="$A" luajit scripts/bench/nn_spore.lua 1 "$ONLY" >>"$tmp/a.tsv"
  SPORE_LIB="$B" luajit scripts/bench/nn_spore.lua 1 "$ONLY" >>"$tmp/b.tsv"
done
/usr/bin/python3 scripts/bench/ab_summary.py "$tmp/b.tsv" "$tmp/a.tsv" b a "a_lib=$A" "b_lib=$B"
