--- scripts/bench/loader_spore.lua DIR [runs] — spore's side of bench_loader.sh: the C
-- loader over DIR's JPEGs, 2 worker threads, batch 32: decode → RandomResizedCrop(224) →
-- RandomHorizontalFlip → Normalize → HWC2CHW (float32 NCHW batches). One epoch to warm the
-- page cache, then one timed epoch per run; prints "loader_jpeg_rrc224_2threads<TAB>images/s<TAB>v"
-- per run, and "cpu<TAB>images per CPU-second<TAB>v" (process CPU time, all threads: the rate
-- one idle core would give, whatever else loads the machine).
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local I = require("ffi.image")
local U = dofile("scripts/bench/util.lua")
local dir, runs = arg[1], tonumber(arg[2]) or 1
local paths = {}
local p = io.popen("ls " .. dir .. "/*.jpg")
for l in p:lines() do paths[#paths + 1] = l end
p:close()
local ops = I.compile_ops {
  { kind = "random_resized_crop", h = 224, w = 224 },
  { kind = "random_hflip", prob = 0.5 },
  { kind = "normalize", mean = { 0.485 * 255, 0.456 * 255, 0.406 * 255 }, std = { 0.229 * 255, 0.224 * 255, 0.225 * 255 } },
  { kind = "hwc2chw" },
}
local L = I.loader(paths, nil, ops, { batch_size = 32, threads = 2, prefetch = 2, channels = 3, seed = 1 })
local function epoch()
  L:start()
  local n = 0
  while true do
    local x = L:next()
    if not x then break end
    n = n + x:shape()[1]
    x:free()
  end
  return n
end
local ffi = require("ffi")
pcall(ffi.cdef, "int clock_gettime(int clk, sp_bench_timespec *ts);")
local cts = ffi.new("sp_bench_timespec")
local function cpu() ffi.C.clock_gettime(2, cts) return tonumber(cts.tv_sec) + tonumber(cts.tv_nsec) * 1e-9 end -- CLOCK_PROCESS_CPUTIME_ID
epoch()
for _ = 1, runs do
  local t0, c0 = U.now(), cpu()
  local n = epoch()
  local t1, c1 = U.now(), cpu()
  io.write(("loader_jpeg_rrc224_2threads\timages/s\t%.6g\n"):format(n / (t1 - t0)))
  io.write(("cpu\timages per CPU-second\t%.6g\n"):format(n / (c1 - c0)))
  io.flush()
end
L:close()
