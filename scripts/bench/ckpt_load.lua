-- ckpt_load.lua FILE RUNS — time spore.load_checkpoint (all tensors materialised)
-- RUNS times; prints "median_seconds peak_rss_kb". Also: ckpt_load.lua --memcpy MB RUNS
-- prints the median seconds of one memcpy of MB megabytes between pre-faulted buffers.
package.path = (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?.lua;" ..
  (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?/init.lua;" .. package.path
local ffi = require("ffi")
ffi.cdef [[ struct sp_ts { long tv_sec; long tv_nsec; }; int clock_gettime(int, struct sp_ts *); ]]
local ts = ffi.new("struct sp_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end
local function median(t) table.sort(t); local n = #t; return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2 end

if arg[1] == "--memcpy" then
  local n = math.floor(tonumber(arg[2]) * 1e6)
  local a, b = ffi.new("uint8_t[?]", n), ffi.new("uint8_t[?]", n)
  ffi.fill(a, n, 1); ffi.fill(b, n, 2)
  local times = {}
  for _ = 1, tonumber(arg[3]) do local t0 = now(); ffi.copy(b, a, n); times[#times + 1] = now() - t0 end
  print(median(times))
  return
end

local spore = require("spore")
local path, runs = arg[1], tonumber(arg[2] or "5")
local times = {}
for _ = 1, runs do
  local t0 = now()
  local d = spore.load_checkpoint(path)
  times[#times + 1] = now() - t0
  for _, k in ipairs(spore.ckpt.keys(d)) do local v = d[k]; if type(v) == "table" then v:free() end end
  d = nil
  collectgarbage(); collectgarbage()
end
local hwm = 0
for line in io.lines("/proc/self/status") do
  local v = line:match("^VmHWM:%s*(%d+)")
  if v then hwm = tonumber(v) end
end
print(median(times), hwm)
