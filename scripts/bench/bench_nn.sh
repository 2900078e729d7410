#!/usr/bin/env bash
# bench_nn.sh — LeNet5 inference/training images/s and ResNet50 forward latency (batch 1
# and 8, 224x224), spore beside PyTorch on the same CPU in the same run. One JSON object
# per line: {"name", "unit", "spore": median, "peers": {"torch": median|null},
# "ratio_vs_torch": spore/torch (images/s: >1 is spore faster; ms: <1 is spore faster), "runs"}.
# PyTorch runs with torch.set_num_threads(2) and OPENBLAS_NUM_THREADS=1; torch is null
# when `import torch` fails. Usage: scripts/bench/bench_nn.sh [runs=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
BUILD=${BUILD:-build}
export SPORE_LIB="${SPORE_LIB:-$PWD/$BUILD/libspore.so}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Runs alternate spore / torch (one measurement each per round) so that load from other
# processes on a shared machine hits both sides alike; each figure is the median of RUNS.
for ((r = 1; r <= RUNS; r++)); do
  luajit scripts/bench/nn_spore.lua 1 >> "$tmp/spore.tsv"
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench/nn_torch.py 1 >> "$tmp/torch.tsv" 2>> "$tmp/torch.err" || true
done
/usr/bin/python3 - "$tmp/spore.tsv" "$tmp/torch.tsv" <<'PY'
import json, statistics, sys
torch, spore, units, order = {}, {}, {}, []
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    if len(f) == 2:
        torch.setdefault(f[0], []).append(float(f[1]))
for line in open(sys.argv[1]):
    name, unit, value, _ = line.rstrip("\n").split("\t")
    if name not in spore:
        order.append(name)
    spore.setdefault(name, []).append(float(value))
    units[name] = unit
for name in order:
    med = statistics.median(spore[name])
    t = statistics.median(torch[name]) if name in torch else None
    print(json.dumps({"name": name, "unit": units[name], "spore": round(med, 3),
                      "peers": {"torch": None if t is None else round(t, 3)},
                      "ratio_vs_torch": None if not t else round(med / t, 3), "runs": len(spore[name])}))
PY
