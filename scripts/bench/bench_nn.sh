#!/usr/bin/env bash
# bench_nn.sh — LeNet5 (inference at batch 1, 64, 256; training at batch 32, images/s) and
# ResNet50 (class_num 1001, 224x224: forward at batch 1, 8, 32 and a Momentum training step
# at batch 8 and 32, ms; forward ms/image over batch 1, 2, 4, 8, 16, 32) — spore with its
# defaults beside each peer in its best configuration, same run:
#   torch (Debian 1.13) and torch_pypi: 2 threads, OPENBLAS_NUM_THREADS=1, ResNet50 in the
#     faster of contiguous and channels_last (probed; "torch_format" says which);
#   mindspore: the faster of Graph and PyNative mode per figure ("mindspore_mode").
# Each figure is the median of RUNS (default 5) runs after warm-up calls, each framework
# in its own process, one after the other. One JSON object per line:
# {"name", "unit", "spore", "peers": {...}, "ratio_vs_torch" (spore/torch, as before),
#  "runs", "best_peer", "speedup_vs_best_peer" (> 1: spore is better), ...}; ResNet50
# forward/training lines add "gflops" (spore's achieved GFLOP/s, 8.2 GFLOP per image
# forward, 3x that for a training step) and "limit": {"sgemm_2thread_gflops"} with
# "fraction_of_limit". bfloat16 (amp_level "O2"): resnet50_forward_b1_bf16 / _b8_bf16 (ms) and
# resnet50_bf16_speedup_b1 / _b8 (spore float32 / spore bf16, alternating runs, both under
# spore.inference_mode as Model:eval/predict run them; _f32_activations: net(x) outside it) have
# no peer figure ("peers": {}, "reference": "spore_float32"); their "bf16_kernel" names spore's
# microkernel. Every row's "conv_kernel" names spore's convolution kernels
# (spore.config().conv_kernel). SPORE_BENCH_NN=prefix,... runs a subset (e.g. lenet5).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
BUILD=${BUILD:-build}
ONLY=${SPORE_BENCH_NN:-}
export SPORE_LIB="${SPORE_LIB:-$PWD/$BUILD/libspore.so}"
source scripts/bench/peers.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/torch.tsv"; : >"$tmp/torch_pypi.tsv"; : >"$tmp/ms_graph.tsv"; : >"$tmp/ms_pynative.tsv"

echo "bench_nn: spore" >&2
luajit scripts/bench/nn_spore.lua "$RUNS" "$ONLY" >"$tmp/spore.tsv"
SPORE_BF16_KERNEL_NAME=$(luajit -e 'package.path="lua/?.lua;lua/?/init.lua;bindings/?.lua;"..package.path; io.write(require("spore").config().bf16_kernel)')
SPORE_CONV_KERNEL_NAME=$(luajit -e 'package.path="lua/?.lua;lua/?/init.lua;bindings/?.lua;"..package.path; io.write(require("spore").config().conv_kernel)')
export SPORE_BF16_KERNEL_NAME SPORE_CONV_KERNEL_NAME
if peer_on torch; then
  echo "bench_nn: torch (Debian)" >&2
  OPENBLAS_NUM_THREADS=1 "$PY_DEBIAN" scripts/bench/nn_torch.py "$RUNS" "$ONLY" >"$tmp/torch.tsv" || echo "bench_nn: torch failed" >&2
fi
if peer_on torch_pypi; then
  echo "bench_nn: torch (PyPI)" >&2
  OPENBLAS_NUM_THREADS=1 "$PY_VENV" scripts/bench/nn_torch.py "$RUNS" "$ONLY" >"$tmp/torch_pypi.tsv" || echo "bench_nn: torch_pypi failed" >&2
fi
if peer_on mindspore; then
  for mode in graph pynative; do
    echo "bench_nn: mindspore ($mode)" >&2
    GLOG_v=3 "$PY_VENV" scripts/bench/nn_mindspore.py "$mode" "$RUNS" "$ONLY" 2>"$tmp/ms.err" >"$tmp/ms_$mode.tsv" ||
      { echo "bench_nn: mindspore $mode failed: $(tail -n1 "$tmp/ms.err")" >&2; }
  done
fi
PEAK=$( { OPENBLAS_NUM_THREADS=2 "$PY_DEBIAN" scripts/bench/sgemm_peak.py
          if [[ -x "$PY_VENV" ]]; then OPENBLAS_NUM_THREADS=2 "$PY_VENV" scripts/bench/sgemm_peak.py; fi; } 2>/dev/null | sort -g | tail -n1)

"$PY_DEBIAN" - "$tmp" "$PEAK" <<'PY'
import json, os, sys
tmp, peak = sys.argv[1], float(sys.argv[2] or 0)

def tsv(name):
    d = {}
    for line in open(os.path.join(tmp, name)):
        f = line.rstrip("\n").split("\t")
        if len(f) == 2:
            d[f[0]] = f[1]
    return d

torch, pypi, graph, pyn = tsv("torch.tsv"), tsv("torch_pypi.tsv"), tsv("ms_graph.tsv"), tsv("ms_pynative.tsv")
GF = 8.2  # GFLOP per image, ResNet50 forward at 224x224 (2 x 4.1 G multiply-adds)
for line in open(os.path.join(tmp, "spore.tsv")):
    name, unit, value, runs = line.rstrip("\n").split("\t")
    s = float(value)
    if "bf16" in name:  # spore's bf16 against spore's float32: no peer runs it
        row = {"name": name, "unit": unit, "spore": round(s, 3), "peers": {}, "ratio_vs_torch": None,
               "runs": int(runs), "reference": "spore_float32", "bf16_kernel": os.environ.get("SPORE_BF16_KERNEL_NAME")}
        if name.startswith("resnet50_forward_b"):
            b = int(name[len("resnet50_forward_b"):].split("_")[0])
            row["gflops"] = round(GF * b / (s / 1000), 1)
        row["conv_kernel"] = os.environ.get("SPORE_CONV_KERNEL_NAME"); print(json.dumps(row))
        continue
    higher = unit == "images/s"          # images/s: higher is better; ms, ms/image: lower
    better = max if higher else min
    num = lambda d: float(d[name]) if name in d else None
    ms_modes = {m: num(d) for m, d in (("graph", graph), ("pynative", pyn)) if num(d) is not None}
    ms_best = better(ms_modes.values()) if ms_modes else None
    peers = {"torch": num(torch), "torch_pypi": num(pypi), "mindspore": ms_best}
    row = {"name": name, "unit": unit, "spore": round(s, 3),
           "peers": {k: (None if v is None else round(v, 3)) for k, v in peers.items()},
           "ratio_vs_torch": None if not peers["torch"] else round(s / peers["torch"], 3), "runs": int(runs)}
    have = {k: v for k, v in peers.items() if v}
    if have:
        bp = better(have, key=have.get)
        row["best_peer"] = bp
        row["speedup_vs_best_peer"] = round(s / have[bp] if higher else have[bp] / s, 3)
    if ms_modes:
        row["mindspore_mode"] = min(ms_modes, key=ms_modes.get) if not higher else max(ms_modes, key=ms_modes.get)
    fmt = {k: d.get(name + ".format") for k, d in (("torch", torch), ("torch_pypi", pypi)) if d.get(name + ".format")}
    if fmt:
        row["torch_format"] = fmt
    if name.startswith("resnet50_forward_b") or name.startswith("resnet50_train_b"):
        b = int(name.rsplit("_b", 1)[1])
        gflop = GF * b * (3 if "_train_" in name else 1)
        row["gflops"] = round(gflop / (s / 1000), 1)
        if peak:
            row["limit"] = {"sgemm_2thread_gflops": peak}
            row["fraction_of_limit"] = round(row["gflops"] / peak, 3)
    row["conv_kernel"] = os.environ.get("SPORE_CONV_KERNEL_NAME"); print(json.dumps(row))
PY
