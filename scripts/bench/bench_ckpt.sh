#!/usr/bin/env bash
# bench_ckpt.sh — load a ~205 MB ResNet50+Momentum .ckpt (written by spore's own
# writer) from the page cache; prints one JSON line:
# {"name":"ckpt_load_resnet50","unit":"MB/s","spore":..,"peers":{"memcpy":..,"mindspore_protobuf":..,
#  "torch_load":..},"ratio_vs_torch":..,"runs":N,"peak_rss_mb":..,...}
# MB/s = file bytes / 1e6 / median seconds. memcpy: one copy of the same size between
# pre-faulted buffers. mindspore_protobuf: python protobuf ParseFromString + numpy copies
# (how MindSpore's load_checkpoint reads), /usr/bin/python3. torch_load: torch.load of an
# equivalent float32 state dict (skipped, null, when torch does not import).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
BUILD=${1:-${BUILD:-build}}
export SPORE_LIB="$PWD/$BUILD/libspore.so"
TMP=$(mktemp -d /tmp/spore_bench_ckpt.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
F="$TMP/resnet50_momentum.ckpt"
luajit scripts/bench/ckpt_gen_resnet50.lua "$F"
SIZE=$(stat -c %s "$F")
cat "$F" > /dev/null   # into the page cache
MB=$(awk -v s="$SIZE" 'BEGIN{printf "%.3f", s/1e6}')

# first loads, each in a fresh process: peak RSS (max) and their median time
FIRST=(); RSS_KB=0
for _ in 1 2 3; do
  read -r t rss < <(luajit scripts/bench/ckpt_load.lua "$F" 1)
  FIRST+=("$t"); (( rss > RSS_KB )) && RSS_KB=$rss
done
T_FIRST=$(printf '%s\n' "${FIRST[@]}" | sort -g | sed -n 2p)
# median of RUNS loads in one process (freed blocks are reused, as glibc's heap does for peers)
read -r T_SPORE _ < <(luajit scripts/bench/ckpt_load.lua "$F" "$RUNS")
T_MEMCPY=$(luajit scripts/bench/ckpt_load.lua --memcpy "$MB" "$RUNS")
T_MS=$(/usr/bin/python3 scripts/bench/ckpt_pydecode.py time "$F" "$RUNS" 2>/dev/null || echo null)
T_TORCH=$(/usr/bin/python3 - "$F" "$TMP/sd.pt" "$RUNS" <<'PY' 2>/dev/null || echo null
import sys, time, statistics
import torch
sys.path.insert(0, "scripts/bench")
import ckpt_pydecode as d
Ckpt = d.build()
ck = Ckpt(); ck.ParseFromString(open(sys.argv[1], "rb").read())
sd = {}
for v in ck.value:
    t = v.tensor
    dt = {"Float32": torch.float32, "Int32": torch.int32}[t.tensor_type]
    shape = [] if (len(t.dims) == 1 and t.dims[0] == 0) else list(t.dims)
    sd[v.tag] = torch.frombuffer(bytearray(t.tensor_content), dtype=dt).reshape(shape).clone()
del ck
torch.save(sd, sys.argv[2]); del sd
open(sys.argv[2], "rb").read()
ts = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); x = torch.load(sys.argv[2]); ts.append(time.perf_counter() - t0); del x
print(statistics.median(ts))
PY
)
python3 - "$SIZE" "$T_SPORE" "$T_MEMCPY" "$T_MS" "$T_TORCH" "$RUNS" "$RSS_KB" "$T_FIRST" <<'PY'
import json, sys
size, ts, tm, tms, tt, runs, rss, tfirst = sys.argv[1:9]
size = int(size)
mbs = lambda t: None if t in ("null", "", None) else round(size / 1e6 / float(t), 1)
s, m, p, t = mbs(ts), mbs(tm), mbs(tms), mbs(tt)
rss_mb = round(int(rss) / 1024, 1)
print(json.dumps({"name": "ckpt_load_resnet50", "unit": "MB/s", "spore": s,
    "peers": {"memcpy": m, "mindspore_protobuf": p, "torch_load": t},
    "ratio_vs_torch": None if not t else round(s / t, 2), "runs": int(runs), "peak_rss_mb": rss_mb,
    "file_mb": round(size / 1e6, 1), "ratio_vs_memcpy": round(s / m, 3),
    "rss_limit_mb": round(1.15 * size / 2**20 + 50, 1), "median_seconds": float(ts),
    "spore_first_load": mbs(tfirst), "first_load_seconds": float(tfirst)}))
PY
