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
/usr/bin/python3 - "$tmp/a.tsv" "$tmp/b.tsv" "$A" "$B" <<'PY'
import json, statistics, sys
def load(p):
    d, u, order = {}, {}, []
    for line in open(p):
        name, unit, value, _ = line.rstrip("\n").split("\t")
        if name not in d: order.append(name)
        d.setdefault(name, []).append(float(value)); u[name] = unit
    return d, u, order
a, units, order = load(sys.argv[1]); b, _, _ = load(sys.argv[2])
for n in order:
    ma, mb = statistics.median(a[n]), statistics.median(b[n])
    print(json.dumps({"name": n, "unit": units[n], "a": round(ma, 3), "b": round(mb, 3), "ratio_b_over_a": round(mb / ma, 3),
                      "a_runs": [round(v, 1) for v in a[n]], "b_runs": [round(v, 1) for v in b[n]], "a_lib": sys.argv[3], "b_lib": sys.argv[4]}))
PY
