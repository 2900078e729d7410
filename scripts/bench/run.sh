#!/usr/bin/env bash
# run.sh BUILD — `make bench`: run every scripts/bench/bench_*.sh, each printing one
# JSON object per line ({"name", "unit", "spore", "peers": {...}, "ratio_vs_torch", "runs"}),
# and collect them into BUILD/bench.json with the machine's description.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
export SPORE_LIB="$PWD/$BUILD/libspore.so"
out="$BUILD/bench.json"
tmp=$(mktemp)
for b in scripts/bench/bench_*.sh; do
  echo "bench: $b" >&2
  bash "$b" | grep -E '^\{' >>"$tmp" || echo "bench: $b failed" >&2
done
{
  printf '{\n  "machine": {"cpus": %s, "model": "%s", "date": "%s"},\n  "results": [\n' \
    "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //; s/"/\\"/g')" "$(date -u +%FT%TZ)"
  sed '$!s/$/,/; s/^/    /' "$tmp"
  printf '  ]\n}\n'
} >"$out"
rm -f "$tmp"
cat "$out"
echo "bench: wrote $out" >&2
