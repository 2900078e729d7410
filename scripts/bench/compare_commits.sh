#!/usr/bin/env bash
# compare_commits.sh REV [rounds=5] — spore's LeNet/ResNet figures (scripts/bench/nn_spore.lua)
# for the working tree and for REV (built in a temporary worktree), measured in the same run
# with the two alternating round by round, so that load from other processes hits both
# alike. One JSON line per figure: {"name", "unit", "this", "base", "base_rev", "ratio"}
# (ratio = this/base: images/s > 1 is faster now, ms < 1 is faster now), medians of rounds.
# SPORE_BENCH_NN=prefix,... runs a subset (as bench_nn.sh). RUNS (default 3) runs per figure in
# each round, their median taken: with 1, a forward's timed call is the one that keeps the
# weights in the convolutions' layouts (each tree's second), not a steady one.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:?usage: compare_commits.sh REV [rounds]}
ROUNDS=${2:-5}
RUNS=${RUNS:-3}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/base" "$REV" >/dev/null 2>&1
make -s -j2 >/dev/null
(cd "$tmp/base" && make -s -j2 >/dev/null 2>&1)
for ((r = 1; r <= ROUNDS; r++)); do
  SPORE_LIB="$PWD/build/libspore.so" luajit scripts/bench/nn_spore.lua "$RUNS" "${SPORE_BENCH_NN:-}" >>"$tmp/this.tsv"
  (cd "$tmp/base" && SPORE_LIB="$PWD/build/libspore.so" luajit scripts/bench/nn_spore.lua "$RUNS" "${SPORE_BENCH_NN:-}") >>"$tmp/base.tsv"
done
/usr/bin/python3 scripts/bench/ab_summary.py "$tmp/this.tsv" "$tmp/base.tsv" this base "base_rev=$REV"
