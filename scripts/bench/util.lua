-- util.lua — helpers for the bench scripts: clock, median, PyTorch peer, JSON line.
local ffi = require("ffi")
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } sp_bench_timespec;
  int clock_gettime(int clk, sp_bench_timespec *ts);
]])
local U = {}
local ts = ffi.new("sp_bench_timespec")
function U.now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
function U.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end
--- Run python code under /usr/bin/python3 with PyTorch's best CPU settings;
-- returns the number it prints last, or nil when torch is unavailable.
function U.python(code)
  local f = os.tmpname()
  local h = io.open(f, "w")
  h:write(code)
  h:close()
  local p = io.popen("OPENBLAS_NUM_THREADS=1 /usr/bin/python3 " .. f .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  os.remove(f)
  local last
  for line in out:gmatch("[^\n]+") do last = line end
  return last and tonumber(last) or nil
end
--- Print one result as a JSON line (spore.json; a nil peer prints as null, and
-- scripts/bench/run.sh refuses a null peer unless SPORE_BENCH_NO_PEERS names it).
function U.emit(t)
  local json = require("spore.json")
  local peers
  if t.peers then
    local names = {}
    for k in pairs(t.peers) do names[#names + 1] = k end
    local has_torch = false
    for _, k in ipairs(names) do if k == "torch" then has_torch = true end end
    if not has_torch then names[#names + 1] = "torch" end
    table.sort(names)
    peers = json.ordered(t.peers, names)
  end
  local keys = { "name", "unit", "spore", "peers", "ratio_vs_torch", "runs" }
  local extra = {}
  for k in pairs(t) do
    local known = false
    for _, kk in ipairs(keys) do if kk == k then known = true end end
    if not known then extra[#extra + 1] = k end
  end
  table.sort(extra)
  for _, k in ipairs(extra) do keys[#keys + 1] = k end
  local row = json.ordered(t, keys)
  if peers then row.peers = peers end
  io.write(json.encode(row), "\n")
  io.flush()
end
--- Labels for a training batch of b over `classes`: (i * 97) mod classes, the same in every
-- framework's bench (nn_torch.py, nn_mindspore.py, frozen_peers.py). All-zero labels let a
-- net fit the batch in two steps: the loss reaches 0 and the gradients go subnormal, and a
-- step then took 20-100 s on this CPU (every framework's, unless it flushes denormals).
function U.labels(spore, b, classes)
  local t = {}
  for i = 1, b do t[i] = ((i - 1) * 97) % classes end
  return spore.tensor(t, "int32")
end
return U
