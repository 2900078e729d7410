#!/usr/bin/env bash
# run.sh BUILD — `make bench`: run every scripts/bench/bench_*.sh, each printing one
# JSON object per line ({"name", "unit", "spore", "peers": {...}, "ratio_vs_torch", "runs",
# and "limit" where a machine limit applies}), and collect them into BUILD/bench.json with
# the machine's description.
# Peers (scripts/bench/peers.sh): torch (Debian's python3-torch, /usr/bin/python3),
# torch_pypi and mindspore (PyPI's current ones, in the venv `make bench-deps` makes).
# Every peer must be measured: a peer that cannot run is an error naming it, before
# anything runs, and a peer recorded as null by a bench (it failed) is an error after. To
# record spore alone on purpose, name the peers to leave out:
# SPORE_BENCH_NO_PEERS=torch,torch_pypi,mindspore (they are then written as null and listed
# under "peers_left_out"). SPORE_BENCH_ONLY=core runs only bench_core.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
export BUILD
export SPORE_LIB="$PWD/$BUILD/libspore.so"
NO_PEERS=${SPORE_BENCH_NO_PEERS:-}
out="$BUILD/bench.json"

source scripts/bench/peers.sh
check_peer() { # name, python, import, how to get it
  peer_left_out "$1" && return 0
  local err
  if [[ ! -x "$2" ]]; then
    echo "bench: peer '$1' is missing: $2 does not exist; $4, or set SPORE_BENCH_NO_PEERS=$1 to record spore without it" >&2
    exit 1
  fi
  if ! err=$("$2" -c "import $3" 2>&1); then
    echo "bench: peer '$1' is missing: $2 cannot import $3 ($(printf '%s' "$err" | tail -n1));" \
      "$4, or set SPORE_BENCH_NO_PEERS=$1 to record spore without it" >&2
    exit 1
  fi
}
check_peer torch "$PY_DEBIAN" torch "install python3-torch (make bench-deps)"
check_peer torch_pypi "$PY_VENV" torch "make bench-deps (a venv with PyPI's torch under $BUILD/)"
check_peer mindspore "$PY_VENV" mindspore "make bench-deps (a venv with PyPI's mindspore under $BUILD/)"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for b in scripts/bench/bench_${SPORE_BENCH_ONLY:-*}.sh; do
  echo "bench: $b" >&2
  bash "$b" | grep -E '^\{' >>"$tmp" || echo "bench: $b failed" >&2
done
# one JSON writer (spore.json): the machine, the results, and the null-peer check
luajit - "$tmp" "$out" "$NO_PEERS" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(date -u +%FT%TZ)" <<'LUA' || exit 1
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local json = require("spore.json")
local src, dst, no_peers, cpus, model, date = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6]
local skip, left = {}, {}
for p in no_peers:gmatch("[^,]+") do skip[p] = true; left[#left + 1] = p end
local results, bad = {}, {}
for line in io.lines(src) do
  local r = json.decode(line)
  -- a figure no peer runs (spore's bf16 against its own float32) keeps "peers": {}
  if type(r.peers) == "table" and next(r.peers) == nil then json.object(r.peers) end
  for peer, v in pairs(r.peers or {}) do
    -- the checkpoint bench's torch.load columns run in PyPI's torch
    local owner = ({ torch_load = "torch_pypi", torch_load_mmap = "torch_pypi" })[peer] or peer
    if v == json.null and not skip[owner] then bad[#bad + 1] = ("'%s' in %s"):format(peer, r.name) end
  end
  local keys = { "name", "unit", "spore", "peers", "ratio_vs_torch", "runs" }
  local rest = {}
  for k in pairs(r) do
    local known = false
    for _, kk in ipairs(keys) do known = known or kk == k end
    if not known then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  results[#results + 1] = json.ordered(r, keys)
end
if #results == 0 then io.stderr:write("bench: no results\n") os.exit(1) end
local doc = json.ordered({ machine = json.ordered({ cpus = tonumber(cpus), model = model, date = date },
  { "cpus", "model", "date" }), peers_left_out = left, results = results }, { "machine", "peers_left_out", "results" })
local f = assert(io.open(dst, "w"))
f:write(json.encode(doc), "\n")
f:close()
if #bad > 0 then
  io.stderr:write("bench: peer measurement missing (recorded as null): " .. table.concat(bad, ", ")
    .. "; see the messages above, or set SPORE_BENCH_NO_PEERS to leave a peer out on purpose\n")
  os.exit(1)
end
LUA
cat "$out"
echo "bench: wrote $out" >&2
