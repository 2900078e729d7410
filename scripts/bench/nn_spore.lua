--- scripts/bench/nn_spore.lua — spore's side of bench_nn.sh. Prints one line per figure:
-- "name<TAB>unit<TAB>median<TAB>runs". Usage: luajit scripts/bench/nn_spore.lua [runs]
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local ffi = require("ffi")
ffi.cdef [[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end
local RUNS = tonumber(arg[1]) or 5

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end
local function report(name, unit, samples)
  io.write(("%s\t%s\t%.6g\t%d\n"):format(name, unit, median(samples), #samples))
  io.flush()
end

spore.manual_seed(1)
-- LeNet5 inference, batch 64, eval mode
do
  local net = spore.models.lenet5():eval()
  local x = spore.randn({ 64, 1, 32, 32 })
  for _ = 1, 5 do net(x) end
  local s = {}
  for r = 1, RUNS do
    local t0, iters = now(), 50
    for _ = 1, iters do net(x) end
    s[r] = iters * 64 / (now() - t0)
  end
  report("lenet5_inference_b64", "images/s", s)
end
-- LeNet5 training, batch 32, Momentum
do
  local net = spore.models.lenet5()
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local x, y = spore.randn({ 32, 1, 32, 32 }), spore.zeros({ 32 }, "int32")
  -- need_input_grad = false: the input is data, not a parameter, so no gradient wrt it is
  -- wanted; PyTorch's side (x without requires_grad) skips it too, so the work is the same
  local function step()
    net:zero_grad(); loss:forward(net(x), y); net:backward(x, loss:backward(), false); opt:step()
  end
  for _ = 1, 5 do step() end
  local s = {}
  for r = 1, RUNS do
    local t0, iters = now(), 100
    for _ = 1, iters do step() end
    s[r] = iters * 32 / (now() - t0)
  end
  report("lenet5_train_b32", "images/s", s)
end
-- ResNet50 forward latency, eval mode, 224x224
for _, b in ipairs({ 1, 8 }) do
  local net = spore.models.resnet50 { class_num = 1001 }:eval()
  local x = spore.randn({ b, 3, 224, 224 })
  net(x)
  local s = {}
  for r = 1, RUNS do
    local t0 = now()
    net(x)
    s[r] = (now() - t0) * 1000
  end
  report("resnet50_forward_b" .. b, "ms", s)
end
