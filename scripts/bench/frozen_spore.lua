--- scripts/bench/frozen_spore.lua — transfer step on a frozen ResNet50 body (only a new
-- end_point Dense trainable) beside the forward alone and a full training step, batch B
-- (default 8), 224x224, Momentum. Prints "name<TAB>ms<TAB>median<TAB>runs" lines and the
-- engine allocations per steady-state step. Usage: luajit scripts/bench/frozen_spore.lua [runs] [batch]
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local ffi = require("ffi")
ffi.cdef [[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end
local RUNS, B = tonumber(arg[1]) or 5, tonumber(arg[2]) or 8
local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end
spore.manual_seed(1)
local net = spore.models.resnet50 { class_num = 1001 }
net.end_point = spore.nn.Dense(2048, 10)
local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
local x, y = spore.randn({ B, 3, 224, 224 }), dofile("scripts/bench/util.lua").labels(spore, B, 10)
local function timed(f)
  f()
  local s = {}
  for r = 1, RUNS do local t0 = now(); f(); s[r] = (now() - t0) * 1000 end
  return median(s)
end
local function stepper(opt)
  return function()
    net:zero_grad(); loss:forward(net(x), y); net:backward(x, loss:backward(), false); opt:step()
  end
end
local fwd = timed(function() net(x) end)
net:freeze(); net:unfreeze("end_point")
local frozen_step = stepper(spore.optim.Momentum(net:trainable_params(), 0.01, 0.9))
local frozen = timed(frozen_step)
local a0 = spore.mem_stats().allocs
frozen_step()
local frozen_allocs = spore.mem_stats().allocs - a0
net:unfreeze()
local full_step = stepper(spore.optim.Momentum(net:trainable_params(), 0.01, 0.9))
local full = timed(full_step)
a0 = spore.mem_stats().allocs
full_step()
local full_allocs = spore.mem_stats().allocs - a0
io.write(("resnet50_forward_train_b%d\tms\t%.1f\t%d\n"):format(B, fwd, RUNS))
io.write(("resnet50_frozen_step_b%d\tms\t%.1f\t%d\n"):format(B, frozen, RUNS))
io.write(("resnet50_full_step_b%d\tms\t%.1f\t%d\n"):format(B, full, RUNS))
io.write(("frozen/forward %.2f  full/forward %.2f  frozen/full %.2f  allocs/step frozen %d full %d\n"):format(
  frozen / fwd, full / fwd, frozen / full, frozen_allocs, full_allocs))
