-- ckpt_load.lua FILE N — time spore.load_checkpoint (all tensors materialised) N times in
-- this process; prints "first_seconds median_seconds_of_the_others peak_rss_kb" (the
-- median is the first load's time when N is 1). Also: ckpt_load.lua --memcpy MB RUNS
-- prints the median seconds of one memcpy of MB megabytes between pre-faulted buffers;
-- --pread FILE RUNS: the median seconds of pread of the whole file into a pre-faulted
-- buffer; --fault MB: the seconds to fault in MB of fresh memory (huge pages advised).
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

ffi.cdef [[ long pread(int, void *, size_t, long); int open(const char *, int, ...); int close(int);
  void *mmap(void *, size_t, int, int, int, long); int munmap(void *, size_t); int madvise(void *, size_t, int); ]]
if arg[1] == "--pread" then
  -- the page-cache copy limit: pread of the whole (cached) file into a pre-faulted buffer
  local f = assert(io.open(arg[2], "rb")); local n = f:seek("end"); f:close()
  local buf = ffi.new("uint8_t[?]", n)
  ffi.fill(buf, n, 1)
  local times = {}
  for _ = 1, tonumber(arg[3]) do
    local fd = ffi.C.open(arg[2], 0)
    local t0, off = now(), 0
    while off < n do
      local r = tonumber(ffi.C.pread(fd, buf + off, n - off, off))
      assert(r > 0, "pread failed")
      off = off + r
    end
    times[#times + 1] = now() - t0
    ffi.C.close(fd)
  end
  print(median(times))
  return
end
if arg[1] == "--fault" then
  -- the fresh-memory limit: seconds to fault in MB of new anonymous memory (huge pages
  -- advised, as the reader's blocks are) in this fresh process
  local n = math.floor(tonumber(arg[2]) * 1e6)
  local len = n + 2 * 1048576
  local m = ffi.cast("uint8_t *", ffi.C.mmap(nil, len, 3, 0x22, -1, 0))
  local a = ffi.cast("uint8_t *", (ffi.cast("uintptr_t", m) + 2097151) - (ffi.cast("uintptr_t", m) + 2097151) % 2097152)
  ffi.C.madvise(a, n, 14)
  local t0 = now()
  for i = 0, n - 1, 4096 do a[i] = 1 end
  print(now() - t0)
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
local first = times[1]
local rest = {}
for i = 2, #times do rest[#rest + 1] = times[i] end
print(first, #rest > 0 and median(rest) or first, hwm)
