#!/usr/bin/env bash
# bench_loader.sh [runs=5] — the image loader's throughput: 300 ImageNet-sized 500x375 JPEGs
# (quality 90, made once by loader_gen.py under BUILD/bench_images) through decode →
# RandomResizedCrop(224) → RandomHorizontalFlip → Normalize → HWC2CHW, batch 32, 2 worker
# threads (spore's C loader), beside PIL + torchvision's transforms in a 2-worker DataLoader
# doing the same. Runs alternate spore / torch; each figure is the median of RUNS timed
# epochs. One JSON line: {"name", "unit": "images/s", "spore", "peers": {"pil_torchvision"},
# "ratio_vs_torch": spore / peer, "runs", "per_cpu_second": {"spore", "pil_torchvision"}
# (images per CPU-second of each side's work: what one idle core gives, a figure the load
# of other processes on a shared machine does not change), "load_avg" (1-minute, at the end)}. The peer runs under $BENCH_PYTHON (default
# /work/venv/bin/python when present, else python3) and is null when torchvision is absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
BUILD=${BUILD:-build}
export SPORE_LIB="${SPORE_LIB:-$PWD/$BUILD/libspore.so}"
PY=${BENCH_PYTHON:-$( [[ -x /work/venv/bin/python ]] && echo /work/venv/bin/python || echo python3 )}
DIR="$BUILD/bench_images"
"$PY" scripts/bench/loader_gen.py "$DIR" 300 2>/dev/null || /usr/bin/python3 scripts/bench/loader_gen.py "$DIR" 300
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= RUNS; r++)); do
  luajit scripts/bench/loader_spore.lua "$DIR" 1 >> "$tmp/spore.tsv"
  "$PY" scripts/bench/loader_torch.py "$DIR" 1 >> "$tmp/torch.tsv" 2>> "$tmp/torch.err" || true
done
python3 - "$tmp/spore.tsv" "$tmp/torch.tsv" "$RUNS" <<'PY'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
sp = [float(r[2]) for r in rows if len(r) == 3 and r[0] != "cpu"]
spc = [float(r[2]) for r in rows if len(r) == 3 and r[0] == "cpu"]
trows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
tv = [float(r[1]) for r in trows if len(r) == 2 and r[0] != "cpu"]
tvc = [float(r[1]) for r in trows if len(r) == 2 and r[0] == "cpu"]
s = statistics.median(sp)
t = statistics.median(tv) if tv else None
print(json.dumps({"name": "loader_jpeg_500x375_rrc224_flip_norm_chw_2threads", "unit": "images/s",
                  "spore": round(s, 1), "peers": {"pil_torchvision": None if t is None else round(t, 1)},
                  "ratio_vs_torch": None if not t else round(s / t, 3), "runs": len(sp),
                  "samples": {"spore": [round(v, 1) for v in sp], "pil_torchvision": [round(v, 1) for v in tv]},
                  "per_cpu_second": {"spore": round(statistics.median(spc), 1) if spc else None,
                                     "pil_torchvision": round(statistics.median(tvc), 1) if tvc else None},
                  "load_avg": float(open("/proc/loadavg").read().split()[0])}))
PY
