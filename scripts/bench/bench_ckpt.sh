#!/usr/bin/env bash
# bench_ckpt.sh — checkpoint load of about 50, 200, 800 and 1600 MB (SPORE_BENCH_CKPT_MB):
# ResNet50-shaped .ckpt files written by spore's writer (the 200 MB one is ResNet50 +
# Momentum state, 205 MB, as before; the others are ResNet50's tensors repeated:
# ckpt_gen_sized.lua). One JSON line per size, "ckpt_load_<N>mb" (and the 200 MB line
# again as "ckpt_load_resnet50", today's name), unit MB/s = file bytes / 1e6 / median s:
#   spore             warm: the median of RUNS loads in one process, the file in the page cache
#   spore_first_load  a fresh process, the file in the page cache (median of RUNS processes)
#   spore_cold_load   a fresh process after `echo 3 > /proc/sys/vm/drop_caches` (root only;
#                     "page_cache_dropped": false and null otherwise)
#   first_load_memory the first load (file cached) under three states of the machine's free
#                     memory: back_to_back (= spore_first_load: each process right after the
#                     last), reused (each right after a process that touched and freed 1.5x
#                     the file's bytes) and idle (each after SPORE_BENCH_IDLE_S=3 seconds
#                     with nothing running). On bare metal the three agree. A VM whose host
#                     backs guest memory lazily and takes back what the guest frees (free
#                     page reporting: Firecracker, this machine) makes memory that was free
#                     a few seconds fault in the host too; limit.fresh_memory_fault_reused /
#                     _idle are the bare faults under the same states.
#   peers             mindspore: mindspore.load_checkpoint; torch_load: torch.load of the same
#                     tensors saved by torch.save; torch_load_mmap: torch.load(mmap=True)
#                     (lazy: pages fault in on first use, not timed) — warm, as spore; the
#                     peers' cold loads are under "peers_cold"
#   limit             memcpy: one copy between pre-faulted buffers (the targets' unit);
#                     pread_page_cache: pread of the cached file into a pre-faulted buffer
#                     (the most a reader that does not map the file can do);
#                     fresh_memory_fault: faulting in new memory in a fresh process (huge
#                     pages advised); disk_cold_read: reading the file after dropping the cache
#   peak_rss_mb       the largest VmHWM of spore's fresh-process loads, beside
#                     rss_limit_mb = 1.15 x file + 50 MB
# Peers run in the bench venv (make bench-deps). RUNS defaults to 5.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
BUILD=${BUILD:-build}
export SPORE_LIB="${SPORE_LIB:-$PWD/$BUILD/libspore.so}"
source scripts/bench/peers.sh
SIZES=${SPORE_BENCH_CKPT_MB:-50 200 800 1600}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spore_bench_ckpt.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export GLOG_v=3

DROP=true
drop() { $DROP && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; }
if ! (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
  DROP=false
  echo "bench_ckpt: cannot drop the page cache (not root?): cold loads are not measured" >&2
fi
# median of numbers on stdin
med() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "null"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# run a loader N times in fresh processes after dropping the cache: "median_first max_rss_kb"
cold() {
  local i out ts=() rss=0
  $DROP || { echo "null 0"; return; }
  for ((i = 1; i <= RUNS; i++)); do
    drop
    out=$("$@" 1) || return 1
    ts+=("$(awk '{print $1}' <<<"$out")")
    r=$(awk '{print $3}' <<<"$out"); (( r > rss )) && rss=$r
  done
  echo "$(printf '%s\n' "${ts[@]}" | med) $rss"
}

for MBS in $SIZES; do
  F="$TMP/ckpt_${MBS}mb.ckpt"
  echo "bench_ckpt: $MBS MB" >&2
  if [[ "$MBS" == 200 ]]; then
    luajit scripts/bench/ckpt_gen_resnet50.lua "$F"
  else
    luajit scripts/bench/ckpt_gen_sized.lua "$F" "$MBS"
  fi
  SIZE=$(stat -c %s "$F")
  MB=$(awk -v s="$SIZE" 'BEGIN{printf "%.3f", s/1e6}')
  PT="$TMP/ckpt_${MBS}mb.pt"
  if peer_on torch_pypi || peer_on torch; then "$PY_VENV" scripts/bench/ckpt_peers.py mkpt "$F.tsv" "$PT"; fi

  # spore
  read -r T_COLD RSS_COLD < <(cold luajit scripts/bench/ckpt_load.lua "$F")
  cat "$F" >/dev/null
  FIRST=(); RSS=$RSS_COLD
  for ((i = 1; i <= RUNS; i++)); do
    read -r t _ r < <(luajit scripts/bench/ckpt_load.lua "$F" 1)
    FIRST+=("$t"); (( r > RSS )) && RSS=$r
  done
  T_FIRST=$(printf '%s\n' "${FIRST[@]}" | med)
  WARM_MB=$(awk -v m="$MB" 'BEGIN{printf "%d", 1.5 * m + 64}')
  FIRST_R=(); FIRST_I=(); FAULT_R=(); FAULT_I=()
  for ((i = 1; i <= RUNS; i++)); do
    luajit scripts/bench/ckpt_load.lua --fault "$WARM_MB" >/dev/null
    read -r t _ r < <(luajit scripts/bench/ckpt_load.lua "$F" 1)
    FIRST_R+=("$t"); (( r > RSS )) && RSS=$r
    luajit scripts/bench/ckpt_load.lua --fault "$WARM_MB" >/dev/null
    FAULT_R+=("$(luajit scripts/bench/ckpt_load.lua --fault "$MB")")
    sleep "${SPORE_BENCH_IDLE_S:-3}"
    read -r t _ r < <(luajit scripts/bench/ckpt_load.lua "$F" 1)
    FIRST_I+=("$t"); (( r > RSS )) && RSS=$r
    sleep "${SPORE_BENCH_IDLE_S:-3}"
    FAULT_I+=("$(luajit scripts/bench/ckpt_load.lua --fault "$MB")")
  done
  T_FIRST_R=$(printf '%s\n' "${FIRST_R[@]}" | med); T_FIRST_I=$(printf '%s\n' "${FIRST_I[@]}" | med)
  T_FAULT_R=$(printf '%s\n' "${FAULT_R[@]}" | med); T_FAULT_I=$(printf '%s\n' "${FAULT_I[@]}" | med)
  read -r _ T_WARM _ < <(luajit scripts/bench/ckpt_load.lua "$F" $((RUNS + 1)))
  # limits
  T_MEMCPY=$(luajit scripts/bench/ckpt_load.lua --memcpy "$MB" "$RUNS")
  T_PREAD=$(luajit scripts/bench/ckpt_load.lua --pread "$F" "$RUNS")
  T_FAULT=$(for ((i = 1; i <= RUNS; i++)); do luajit scripts/bench/ckpt_load.lua --fault "$MB"; done | med)
  T_DISK=null
  if $DROP; then
    T_DISK=$(for ((i = 1; i <= RUNS; i++)); do drop; luajit scripts/bench/ckpt_load.lua --pread "$F" 1; done | med)
  fi
  # peers: warm (in one process; the first load discarded) and cold
  T_MS=null; T_MS_COLD=null; RSS_MS=0; T_TL=null; T_TL_COLD=null; RSS_TL=0; T_TM=null; T_TM_COLD=null
  if peer_on mindspore; then
    read -r _ T_MS RSS_MS < <("$PY_VENV" scripts/bench/ckpt_peers.py mindspore "$F" $((RUNS + 1)) 2>/dev/null) || true
    read -r T_MS_COLD _ < <(cold "$PY_VENV" scripts/bench/ckpt_peers.py mindspore "$F" 2>/dev/null) || true
  fi
  if peer_on torch_pypi; then
    read -r _ T_TL RSS_TL < <("$PY_VENV" scripts/bench/ckpt_peers.py torch "$PT" $((RUNS + 1)) 2>/dev/null) || true
    read -r T_TL_COLD _ < <(cold "$PY_VENV" scripts/bench/ckpt_peers.py torch "$PT" 2>/dev/null) || true
    read -r _ T_TM _ < <("$PY_VENV" scripts/bench/ckpt_peers.py torch_mmap "$PT" $((RUNS + 1)) 2>/dev/null) || true
    read -r T_TM_COLD _ < <(cold "$PY_VENV" scripts/bench/ckpt_peers.py torch_mmap "$PT" 2>/dev/null) || true
  fi
  rm -f "$PT"
  "$PY_DEBIAN" - "$MBS" "$SIZE" "$RUNS" "$T_WARM" "$T_FIRST" "$T_COLD" "$RSS" "$T_MEMCPY" "$T_PREAD" "$T_FAULT" \
    "$T_DISK" "$T_MS" "$T_MS_COLD" "$RSS_MS" "$T_TL" "$T_TL_COLD" "$RSS_TL" "$T_TM" "$T_TM_COLD" "$DROP" \
    "$T_FIRST_R" "$T_FIRST_I" "$T_FAULT_R" "$T_FAULT_I" <<'PY'
import json, sys
(mbs, size, runs, warm, first, cold, rss, memcpy, pread, fault, disk, ms, ms_cold, rss_ms, tl, tl_cold, rss_tl,
 tm, tm_cold, dropped, first_r, first_i, fault_r, fault_i) = sys.argv[1:25]
size = int(size)
def rate(t):
    return None if t in ("null", "", None) or float(t) <= 0 else round(size / 1e6 / float(t), 1)
s, f, c = rate(warm), rate(first), rate(cold)
peers = {"mindspore": rate(ms), "torch_load": rate(tl), "torch_load_mmap": rate(tm)}
lim = {"memcpy": rate(memcpy), "pread_page_cache": rate(pread), "fresh_memory_fault": rate(fault),
       "fresh_memory_fault_reused": rate(fault_r), "fresh_memory_fault_idle": rate(fault_i),
       "disk_cold_read": rate(disk)}
fm = {"back_to_back": f, "reused": rate(first_r), "idle": rate(first_i)}
rss_mb = round(int(rss) / 1024, 1)
row = {"name": "ckpt_load_%smb" % mbs, "unit": "MB/s", "spore": s, "peers": peers,
       "ratio_vs_torch": None if not peers["torch_load"] else round(s / peers["torch_load"], 2), "runs": int(runs),
       "file_mb": round(size / 1e6, 1), "spore_first_load": f, "spore_cold_load": c,
       "page_cache_dropped": dropped == "true",
       "peers_cold": {"mindspore": rate(ms_cold), "torch_load": rate(tl_cold), "torch_load_mmap": rate(tm_cold)},
       "limit": lim,
       "first_load_memory": fm,
       "first_load_memory_ratio_vs_memcpy": {k: round(v / lim["memcpy"], 3) for k, v in fm.items()},
       "ratio_vs_memcpy": round(s / lim["memcpy"], 3), "first_load_ratio_vs_memcpy": round(f / lim["memcpy"], 3),
       "ratio_vs_mindspore": None if not peers["mindspore"] else round(s / peers["mindspore"], 1),
       "peak_rss_mb": rss_mb, "rss_limit_mb": round(1.15 * size / 2**20 + 50, 1),
       "peers_peak_rss_mb": {"mindspore": round(int(rss_ms) / 1024, 1), "torch_load": round(int(rss_tl) / 1024, 1)},
       "median_seconds": float(warm), "first_load_seconds": float(first)}
print(json.dumps(row))
if mbs == "200":
    row["name"] = "ckpt_load_resnet50"
    print(json.dumps(row))
PY
  rm -f "$F" "$F.tsv"
done
