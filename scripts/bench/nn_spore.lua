--- scripts/bench/nn_spore.lua — spore's side of bench_nn.sh (the same work as
-- nn_torch.py and nn_mindspore.py), with the defaults (no knobs). Prints one line per
-- figure: "name<TAB>unit<TAB>median<TAB>runs". Usage: luajit nn_spore.lua [runs] [workloads]
-- (workloads: comma-separated name prefixes; all by default).
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local U = dofile("scripts/bench/util.lua")
local RUNS = tonumber(arg[1]) or 5
local ONLY = arg[2] and arg[2] ~= "" and arg[2] or nil

local function want(prefix)
  if not ONLY then return true end
  for o in ONLY:gmatch("[^,]+") do
    if prefix:sub(1, #o) == o or o:sub(1, #prefix) == prefix then return true end
  end
  return false
end
local function report(name, unit, value)
  io.write(("%s\t%s\t%.6g\t%d\n"):format(name, unit, value, RUNS))
  io.flush()
end
-- median seconds of RUNS calls of fn after `warm` calls
local function samples(fn, warm)
  for _ = 1, warm or 2 do fn() end
  local s = {}
  for r = 1, RUNS do
    local t0 = U.now()
    fn()
    s[r] = U.now() - t0
  end
  return U.median(s)
end

spore.manual_seed(1)
-- LeNet5 inference, eval mode
for _, bi in ipairs({ { 1, 2000 }, { 64, 50 }, { 256, 15 } }) do
  local b, iters = bi[1], bi[2]
  local name = "lenet5_inference_b" .. b
  if want(name) then
    local net = spore.models.lenet5():eval()
    local x = spore.randn({ b, 1, 32, 32 })
    report(name, "images/s", iters * b / samples(function() for _ = 1, iters do net(x) end end))
  end
end
-- LeNet5 training, batch 32, Momentum
if want("lenet5_train_b32") then
  local net = spore.models.lenet5()
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local x, y = spore.randn({ 32, 1, 32, 32 }), U.labels(spore, 32, 10)
  -- need_input_grad = false: the input is data, not a parameter, so no gradient wrt it is
  -- wanted; the peers' x has no requires_grad either, so the work is the same
  local function step()
    net:zero_grad(); loss:forward(net(x), y); net:backward(x, loss:backward(), false); opt:step()
  end
  report("lenet5_train_b32", "images/s", 100 * 32 / samples(function() for _ = 1, 100 do step() end end))
end
-- ResNet50 (class_num 1001), 224x224: forward in eval mode over batch 1..32, and a
-- Momentum training step at batch 8 and 32
if want("resnet50") then
  local net = spore.models.resnet50 { class_num = 1001 }
  net:eval()
  local curve = {}
  for _, b in ipairs({ 1, 2, 4, 8, 16, 32 }) do
    if want("resnet50_forward_b" .. b) or want("resnet50_ms_per_image_b" .. b) then
      local x = spore.randn({ b, 3, 224, 224 })
      local ms = samples(function() net(x) end, 1) * 1000
      curve[#curve + 1] = { b, ms }
      if b == 1 or b == 8 or b == 32 then report("resnet50_forward_b" .. b, "ms", ms) end
    end
  end
  for _, c in ipairs(curve) do report("resnet50_ms_per_image_b" .. c[1], "ms/image", c[2] / c[1]) end
  -- bfloat16 (amp_level "O2": Conv2d and Dense through the bf16 GEMM, spore.config().bf16_kernel),
  -- forward at batch 1 and 8, each run beside a float32 run (alternating, the order flipped
  -- every round), both as Model:eval/predict run a net (spore.inference_mode: under O2 the
  -- activations between the fused convolutions are bf16, as MindSpore's O2 keeps float16 ones):
  -- resnet50_forward_b<B>_bf16 (ms) and resnet50_bf16_speedup_b<B> (float32 median / bf16
  -- median, > 1: bf16 is faster); resnet50_bf16_speedup_b<B>_f32_activations: the same with
  -- net(x) called outside it (float32 activations, what a backward needs). Two nets (same
  -- initialisation), one per level, so no buffer changes dtype between the runs.
  local amp = spore.train.amp
  local net16
  for _, b in ipairs({ 1, 8 }) do
    local names = { "resnet50_forward_b" .. b .. "_bf16", "resnet50_bf16_speedup_b" .. b,
      "resnet50_bf16_speedup_b" .. b .. "_f32_activations" }
    if want(names[1]) or want(names[2]) or want(names[3]) then
      if not net16 then
        net16 = spore.models.resnet50 { class_num = 1001 }
        local src = {}
        for _, e in ipairs(net:parameters_and_names()) do src[e[1]] = e[2] end
        for _, e in ipairs(net16:parameters_and_names()) do e[2].data:copy_(src[e[1]].data) end
        net16:eval()
        amp.auto_mixed_precision(net16, "O2")
      end
      local x = spore.randn({ b, 3, 224, 224 })
      local nets = { O0 = net, O2 = net16 }
      for _, infer in ipairs({ true, false }) do
        local function run(n) if infer then spore.inference_mode(n, x) else n(x) end end
        local t = { O0 = {}, O2 = {} }
        for _, lv in ipairs({ "O0", "O2" }) do run(nets[lv]); run(nets[lv]) end
        for r = 1, RUNS do
          for _, lv in ipairs(r % 2 == 1 and { "O0", "O2" } or { "O2", "O0" }) do
            local t0 = U.now()
            run(nets[lv])
            t[lv][r] = U.now() - t0
          end
        end
        local f32, b16 = U.median(t.O0), U.median(t.O2)
        if infer then
          report(names[1], "ms", b16 * 1000)
          report(names[2], "x", f32 / b16)
        else
          report(names[3], "x", f32 / b16)
        end
      end
    end
  end
  net:train()
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  for _, b in ipairs({ 8, 32 }) do
    if want("resnet50_train_b" .. b) then
      local x, y = spore.randn({ b, 3, 224, 224 }), U.labels(spore, b, 1001)
      local function step()
        net:zero_grad(); loss:forward(net(x), y); net:backward(x, loss:backward(), false); opt:step()
      end
      report("resnet50_train_b" .. b, "ms", samples(step, 1) * 1000)
    end
  end
end
