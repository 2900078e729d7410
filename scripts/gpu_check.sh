#!/usr/bin/env bash
# scripts/gpu_check.sh — the CUDA backend's check on a GPU machine, in one call of at most
# 8 minutes (a fresh machine holding this repository and ../shared; no network needed).
#   1. builds `make CUDA=1` (H200 sm_90 code + compute_90 PTX);
#   2. runs the cuda specs (spec/cuda_spec.lua: every kernel on cuda:0 vs the CPU under its
#      stated NMSE bound) and counts the failed ones (ops_failed);
#   3. evaluates the real MindSpore LeNet checkpoint on MNIST t10k on the GPU through
#      `scripts/eval.lua --device cuda` (expected 0.9638 +- 0.001);
#   4. trains LeNet one epoch on Fashion-MNIST on the CPU (the reference), on the GPU in
#      float32 and on the GPU in O2, and compares the test accuracies (within 0.01);
#   5. times ResNet50 forward and training at batch 32 and 128, float32 and O2, and the same
#      with PyTorch on the same GPU when torch imports (or `pip install torch` works);
#   5''. when the budget is not spent: spore.dist over NCCL, 2 processes (scripts/dist/gpu_check.sh:
#      LeNet5 data parallel on the GPU against 1 GPU process and the MPI/CPU path; skipped with
#      its reason without mpirun or NCCL, or when NCCL refuses two ranks on one GPU);
#   6. writes build/gpu_report.json and prints a short table.
# Every step has its own time limit; a step that fails is reported, the rest still run.
# On the device tool's bare machine: first `bash scripts/gpu_bundle.sh` here, then
#   run(command="bash scripts/gpu_check.sh; cp build/gpu_report.json build/gpu_check/{build.log,specs.tap,specs.err,torch.err} $OUT/",
#       carry=[".gpu.tar.xz"], timeout_s=540)
# Environment: SPORE_FIXTURES (default ../shared/fixtures), FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist, else ../shared/fashion-mnist), JOBS (make -j, default nproc),
# GPU_CHECK_NO_PIP=1 (never try `pip install torch`), GPU_CHECK_BUDGET (seconds, default 470).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
BUSTED=${BUSTED:-/usr/bin/busted}
# The bare GPU machine: spore's Debian dependencies, the fixtures and Fashion-MNIST come in
# .gpu.tar.xz (scripts/gpu_bundle.sh, run on the development machine; carried by the device
# tool), unpacked here; CUDA's own libraries are found where the image has them.
if [ -f .gpu.tar.xz ]; then
  G=/tmp/spore_gpu
  rm -rf "$G"; mkdir -p "$G"
  tar -xJf .gpu.tar.xz -C "$G" --strip-components=1 || echo "gpu_check: cannot unpack .gpu.tar.xz" >&2
  export PATH="$G/bin:$PATH"
  export LD_LIBRARY_PATH="$G/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LIBRARY_PATH="$G/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export CPATH="$G/include:$G/include/luajit-2.1${CPATH:+:$CPATH}"
  export LUA_PATH="$G/lua/?.lua;$G/lua/?/init.lua;;"
  export LUA_CPATH="$G/clua/?.so;;"
  BUSTED=$G/bin/busted
  : "${SPORE_FIXTURES:=$G/fixtures}"
  [ -d "$G/fashion-mnist" ] && : "${FASHION_MNIST_DIR:=$G/fashion-mnist}"
  # the protobuf-c sources generated on the development machine (no protoc-c here)
  mkdir -p build/cuda/gen && cp "$G"/gen/* build/cuda/gen/ && touch build/cuda/gen/*
fi
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC_BIN")")}
# cuDNN and cuBLAS: the toolkit's, else the Python wheels' (nvidia-cudnn-cu13, nvidia-cublas)
wheel_dirs=$(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, q) for p in nvidia.__path__ for q in sorted(os.listdir(p))))' 2>/dev/null)
NVCC_EXTRA=""
for lib in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libnccl.so.2; do
  found=""
  for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" /usr/lib/x86_64-linux-gnu $(for w in $wheel_dirs; do echo "$w/lib"; done); do
    [ -e "$d/$lib" ] && { found=$d; break; }
  done
  if [ -z "$found" ]; then echo "gpu_check: $lib not found" >&2; continue; fi
  case ":${LD_LIBRARY_PATH:-}:" in *":$found:"*) ;; *) export LD_LIBRARY_PATH="$found${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}";; esac
  base=${lib%%.so.*}.so
  if [ ! -e "$found/$base" ] && [ -n "${G:-}" ]; then ln -sf "$found/$lib" "$G/lib/$base"; fi
  case ":${LIBRARY_PATH:-}:" in *":$found:"*) ;; *) export LIBRARY_PATH="$found${LIBRARY_PATH:+:$LIBRARY_PATH}";; esac
done
if [ ! -e "$CUDA_HOME/include/cudnn.h" ]; then
  for w in $wheel_dirs; do [ -e "$w/include/cudnn.h" ] && NVCC_EXTRA="$NVCC_EXTRA -I$w/include"; done
fi
for w in $wheel_dirs; do [ -e "$w/include/cublas_v2.h" ] && [ ! -e "$CUDA_HOME/include/cublas_v2.h" ] && NVCC_EXTRA="$NVCC_EXTRA -I$w/include"; done
# nccl.h for libspore_dist.so's NCCL half (cc, not nvcc): the toolkit's or /usr/include, else the wheel's
if [ ! -e "$CUDA_HOME/include/nccl.h" ] && [ ! -e /usr/include/nccl.h ]; then
  for w in $wheel_dirs; do [ -e "$w/include/nccl.h" ] && export CPATH="$w/include${CPATH:+:$CPATH}"; done
fi
BUDGET=${GPU_CHECK_BUDGET:-470} # seconds: the steps after this are skipped (and reported)
OUT=build/gpu_check
rm -rf "$OUT"; mkdir -p "$OUT"
FIX=${SPORE_FIXTURES:-../shared/fixtures}
export SPORE_FIXTURES=$FIX
FM=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
has_idx() { [ -e "$1/train-images-idx3-ubyte" ] || [ -e "$1/train-images-idx3-ubyte.gz" ]; }
has_idx "$FM" || FM=../shared/fashion-mnist
FM_NAME=fashion-mnist
# no Fashion-MNIST on this machine: the same comparison on MNIST (same idx format), labelled so
if ! has_idx "$FM"; then FM=$FIX/mnist; FM_NAME="mnist (Fashion-MNIST not found on this machine)"; fi
LIB=$PWD/build/cuda/libspore.so
export SPORE_LIB=$LIB
PY=$(command -v python3 || echo /work/venv/bin/python)
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
note() { echo "$*" >>"$OUT/notes.txt"; echo "gpu_check: $*" >&2; }
# run_json NAME LIMIT CMD...: the command's last stdout line (JSON) into $OUT/NAME.json
run_json() {
  local name=$1 lim=$2; shift 2
  if [ "$(left)" -lt 10 ]; then echo '{"error":"skipped: the 8-minute budget is spent"}' >"$OUT/$name.json"; return; fi
  [ "$lim" -gt "$(left)" ] && lim=$(left)
  timeout "$lim" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  local last; last=$(grep -E '^\{' "$OUT/$name.out" | tail -1)
  if [ -n "$last" ] && [ $rc -eq 0 ]; then echo "$last" >"$OUT/$name.json"
  else
    local why; why=$(tail -1 "$OUT/$name.err" | tr -d '"\\' | cut -c1-300)
    [ $rc -eq 124 ] && why="timed out after ${lim}s"
    printf '{"error":"exit %s: %s"}\n' "$rc" "$why" >"$OUT/$name.json"
  fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 >"$OUT/gpu.txt"
echo "== gpu_check: $(cat "$OUT/gpu.txt")" >&2
echo "$FM_NAME" >"$OUT/fmnist_data.txt"

# 1. build
echo "== build (make CUDA=1)" >&2
build_ok=1
if ! timeout 240 make -j"${JOBS:-$(nproc)}" CUDA=1 NVCC="$NVCC_BIN" NVCC_EXTRA="$NVCC_EXTRA" build/cuda/libspore.so \
     >"$OUT/build.log" 2>&1; then
  build_ok=0; note "make CUDA=1 failed: $(grep -m1 -E 'error|Error' "$OUT/build.log" | cut -c1-200)"
fi

if [ $build_ok -eq 1 ]; then
  # 2. cuda specs (TAP: one "ok"/"not ok" line per op case)
  echo "== cuda specs" >&2
  timeout 150 luajit "$BUSTED" --run=cuda -o TAP spec/cuda_spec.lua >"$OUT/specs.tap" 2>"$OUT/specs.err"
  echo "   $(grep -E '^ok ' "$OUT/specs.tap" | grep -vc '# SKIP') ok, $(grep -cE '^not ok ' "$OUT/specs.tap") not ok" >&2
  # 3. LeNet t10k, the real MindSpore checkpoint, through the CLI
  echo "== LeNet t10k on cuda" >&2
  run_json lenet_t10k 120 luajit scripts/eval.lua --device cuda --dataset mnist --data "$FIX/mnist" \
    --ckpt "$FIX/mindspore/checkpoint_lenet-1_1875.ckpt" --quiet
  # 4. Fashion-MNIST, one epoch: CPU reference, GPU float32, GPU O2
  echo "== Fashion-MNIST one epoch ($FM)" >&2
  run_json fmnist_gpu_f32 150 luajit scripts/gpu_check.lua fmnist cuda O0 "$FM"
  run_json fmnist_gpu_o2 150 luajit scripts/gpu_check.lua fmnist cuda O2 "$FM"
  run_json fmnist_cpu 150 luajit scripts/gpu_check.lua fmnist cpu O0 "$FM"
  # 5. ResNet50: spore
  echo "== ResNet50 (spore)" >&2
  for b in 32 128; do for amp in O0 O2; do
    run_json "resnet_spore_b${b}_${amp}" 90 luajit scripts/gpu_check.lua resnet cuda "$b" "$amp"
  done; done
  # 5''. spore.dist over NCCL: 2 processes, LeNet5 data parallel on the GPU against the MPI/CPU path
  # (scripts/dist/gpu_check.sh; skipped with its reason without mpirun/NCCL, or when NCCL refuses
  # two ranks on one GPU)
  echo "== spore.dist NCCL (2 processes)" >&2
  run_json dist_nccl 150 bash scripts/dist/gpu_check.sh
fi
# 5'. ResNet50: PyTorch on the same GPU (installed if it can be)
echo "== ResNet50 (PyTorch)" >&2
if [ -z "${GPU_CHECK_NO_PIP:-}" ] && ! "$PY" -c "import torch" 2>/dev/null; then
  timeout 100 "$PY" -m pip install --quiet torch >"$OUT/pip.log" 2>&1 || note "pip install torch failed: $(tail -1 "$OUT/pip.log" | cut -c1-160)"
fi
if [ "$(left)" -gt 20 ]; then
  lim=150; [ $lim -gt "$(left)" ] && lim=$(left)
  timeout "$lim" "$PY" scripts/gpu_torch.py 32 128 >"$OUT/torch.jsonl" 2>"$OUT/torch.err" || note "gpu_torch.py: exit $? ($(tail -1 "$OUT/torch.err" | cut -c1-160))"
else
  note "PyTorch comparison skipped: the 8-minute budget is spent"
fi

# 6. report
"$PY" - "$OUT" "$build_ok" "$(elapsed)" <<'PYEOF'
import json, os, re, sys
out, build_ok, secs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f: return json.loads(f.read())
    except Exception as e: return {"error": "not run (%s)" % e.__class__.__name__}
def read(name):
    try:
        with open(os.path.join(out, name)) as f: return f.read()
    except Exception: return ""
tap = read("specs.tap")
failed = [l[len("not ok "):].split(" - ", 1)[-1] for l in tap.splitlines() if l.startswith("not ok ")]
passed = sum(1 for l in tap.splitlines() if l.startswith("ok ") and "# SKIP" not in l)
pending = len(re.findall(r"# SKIP", tap))
r = {"gpu": read("gpu.txt").strip(), "build_ok": build_ok, "seconds": secs}
r["ops_passed"], r["ops_failed"] = (passed, len(failed)) if tap else (None, None)
r["ops_failed_names"] = failed
if tap and passed == 0 and not failed: r["ops_note"] = "no case ran (pending: %d): %s" % (pending, read("specs.err").strip()[-200:])
le = load("lenet_t10k")
r["lenet_t10k_accuracy"] = le.get("accuracy")
r["lenet_t10k_ok"] = le.get("accuracy") is not None and abs(le["accuracy"] - 0.9638) <= 0.001
if "error" in le: r["lenet_t10k_error"] = le["error"]
fm = {k: load("fmnist_" + k) for k in ("cpu", "gpu_f32", "gpu_o2")}
r["fmnist_data"] = read("fmnist_data.txt").strip()
cpu = fm["cpu"].get("accuracy")
for k, v in fm.items():
    r["fmnist_%s_accuracy" % k] = v.get("accuracy")
    if "error" in v: r["fmnist_%s_error" % k] = v["error"]
    if k != "cpu": r["fmnist_%s_ok" % k] = cpu is not None and v.get("accuracy") is not None and abs(v["accuracy"] - cpu) <= 0.01
torch = {}
for line in read("torch.jsonl").splitlines():
    try: d = json.loads(line)
    except ValueError: continue
    if "batch" in d: torch[(d["batch"], d["amp"])] = d
    elif "error" in d: r["torch_error"] = d["error"]
rows = []
for b in (32, 128):
    for amp in ("O0", "O2"):
        s, t = load("resnet_spore_b%d_%s" % (b, amp)), torch.get((b, amp), {})
        row = {"batch": b, "amp": amp, "spore_forward_ips": s.get("forward_images_per_s"),
               "spore_train_ips": s.get("train_images_per_s"), "torch_forward_ips": t.get("forward_images_per_s"),
               "torch_train_ips": t.get("train_images_per_s")}
        if row["spore_train_ips"] and row["torch_train_ips"]: row["train_ratio_vs_torch"] = row["spore_train_ips"] / row["torch_train_ips"]
        if "error" in s: row["spore_error"] = s["error"]
        if "error" in t: row["torch_error"] = t["error"]
        rows.append(row)
r["resnet50"] = rows
def ips(b, amp, who):
    for x in rows:
        if x["batch"] == b and x["amp"] == amp: return x.get(who + "_train_ips")
f32, o2, tf32 = ips(128, "O0", "spore"), ips(128, "O2", "spore"), ips(128, "O0", "torch")
r["resnet50_b128_train_ratio_vs_torch"] = f32 / tf32 if f32 and tf32 else None
r["resnet50_b128_o2_speedup"] = o2 / f32 if o2 and f32 else None
r["dist_nccl"] = load("dist_nccl")
r["notes"] = read("notes.txt").splitlines()
def fmt(x, p=4): return "n/a" if x is None else ("%.*f" % (p, x))
checks = [("ops", r["ops_failed"] == 0 and bool(r["ops_passed"])), ("lenet", r["lenet_t10k_ok"]), ("fmnist_f32", r.get("fmnist_gpu_f32_ok")),
          ("fmnist_o2", r.get("fmnist_gpu_o2_ok")),
          ("resnet_vs_torch", r["resnet50_b128_train_ratio_vs_torch"] is not None and r["resnet50_b128_train_ratio_vs_torch"] >= 0.8),
          ("o2_speedup", r["resnet50_b128_o2_speedup"] is not None and r["resnet50_b128_o2_speedup"] >= 1.5)]
r["checks"] = {k: bool(v) for k, v in checks}
r["summary"] = ("%s: ops_failed=%s lenet_t10k=%s fmnist cpu/gpu/O2=%s/%s/%s resnet50 b128 train %s img/s (%sx torch), O2 %sx; failed: %s"
                % ("PASS" if all(v for _, v in checks) else "FAIL", r["ops_failed"], fmt(r["lenet_t10k_accuracy"]), fmt(cpu),
                   fmt(r["fmnist_gpu_f32_accuracy"]), fmt(r["fmnist_gpu_o2_accuracy"]), fmt(f32, 1),
                   fmt(r["resnet50_b128_train_ratio_vs_torch"], 2), fmt(r["resnet50_b128_o2_speedup"], 2),
                   ",".join(k for k, v in checks if not v) or "none"))
with open("build/gpu_report.json", "w") as f: json.dump(r, f, indent=1)
print("%-28s %s" % ("GPU", r["gpu"] or "n/a"))
print("%-28s %s passed, %s failed %s" % ("cuda specs (ops)", r["ops_passed"], r["ops_failed"], ", ".join(failed)[:200]))
print("%-28s %s (expect 0.9638 +- 0.001)" % ("LeNet t10k on cuda", fmt(r["lenet_t10k_accuracy"])))
print("%-28s cpu %s  gpu f32 %s  gpu O2 %s" % ("Fashion-MNIST 1 epoch", fmt(cpu), fmt(r["fmnist_gpu_f32_accuracy"]), fmt(r["fmnist_gpu_o2_accuracy"])))
print("%-28s %10s %10s %10s %10s %7s" % ("ResNet50 img/s (batch, amp)", "spore fwd", "torch fwd", "spore trn", "torch trn", "ratio"))
for x in rows:
    print("%-28s %10s %10s %10s %10s %7s" % ("  b%d %s" % (x["batch"], x["amp"]), fmt(x["spore_forward_ips"], 1), fmt(x["torch_forward_ips"], 1),
          fmt(x["spore_train_ips"], 1), fmt(x["torch_train_ips"], 1), fmt(x.get("train_ratio_vs_torch"), 2)))
print("%-28s %s" % ("spore.dist NCCL -np 2", json.dumps(r["dist_nccl"])[:240]))
for n in r["notes"]: print("note:", n)
print(r["summary"])
PYEOF
