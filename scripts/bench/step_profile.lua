--- scripts/bench/step_profile.lua — where a ResNet50 (class_num 1001, 224x224) training step
-- or forward goes, per kernel family: wraps the ffi.nn calls with timers (the CPU kernels are
-- synchronous). Convolution backward is called twice, once for grad_w/grad_b and once for
-- grad_x, so that the two show apart (the batched path gathers grad_out in both).
-- Usage: luajit scripts/bench/step_profile.lua [batch=8] [steps=3] [train|forward]
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local U = dofile("scripts/bench/util.lua")
local K = require("ffi.nn")
local B = tonumber(arg[1]) or 8
local STEPS = tonumber(arg[2]) or 3
local MODE = arg[3] or "train"
local T, N = {}, {}
local on = false
local function add(k, dt) T[k] = (T[k] or 0) + dt; N[k] = (N[k] or 0) + 1 end
local function wrap(name, fam)
  local f = K[name]
  K[name] = function(...)
    if not on then return f(...) end
    local t0 = U.now(); local r = f(...); add(type(fam) == "function" and fam(...) or fam, U.now() - t0); return r
  end
end
local function ktag(w, stride)
  local s = w:shape()
  local st = type(stride) == "table" and stride[1] or stride
  return ("%dx%d%s"):format(s[3], s[4], st ~= 1 and "s2" or "")
end
wrap("conv2d_forward", function(out, x, w, b, stride) return "conv_fwd " .. ktag(w, stride) end)
-- eval-mode fused conv + BN (+ add) (+ ReLU) (spore.nn.chain)
wrap("conv2d_bn_forward", function(out, x, w, b, g, be, mm, mv, eps, res, relu, stride)
  return "conv_bn_fwd " .. ktag(w, stride) end)
local cb = K.conv2d_backward
K.conv2d_backward = function(gx, gw, gb, gout, x, w, stride, ...)
  if not on then return cb(gx, gw, gb, gout, x, w, stride, ...) end
  local tag = ktag(w, stride)
  local t0 = U.now()
  if gw or gb then cb(nil, gw, gb, gout, x, w, stride, ...) end
  local t1 = U.now(); add("conv_wgrad " .. tag, t1 - t0)
  if gx then cb(gx, nil, nil, gout, x, w, stride, ...); add("conv_xgrad " .. tag, U.now() - t1) end
end
for _, p in ipairs({ { "batchnorm_forward", "bn_fwd" }, { "batchnorm_backward", "bn_bwd" },
  { "batchnorm_act_forward", "bn(+add)(+relu)_fwd" }, { "batchnorm_relu_backward", "bn+relu_bwd" }, { "relu_forward", "relu_fwd" },
  { "relu_backward", "relu_bwd" }, { "add", "add(+relu)" }, { "accumulate", "accumulate" }, { "maxpool_forward", "pool" },
  { "maxpool_backward", "pool" }, { "global_avgpool_forward", "pool" }, { "global_avgpool_backward", "pool" },
  { "dense_forward", "dense" }, { "dense_backward", "dense" }, { "momentum_update", "optim" }, { "xent_forward", "loss" },
  { "xent_backward", "loss" } }) do wrap(p[1], p[2]) end

spore.manual_seed(1)
local net = spore.models.resnet50 { class_num = 1001 }
local x, y = spore.randn({ B, 3, 224, 224 }), U.labels(spore, B, 1001)
local step
if MODE == "train" then
  net:train()
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  step = function()
    local t0 = U.now(); net:zero_grad(); add("zero_grad", U.now() - t0)
    loss:forward(net(x), y); net:backward(x, loss:backward(), false)
    t0 = U.now(); opt:step(); add("opt:step", U.now() - t0)
  end
else
  net:eval(); step = function() net(x) end
end
step()
on = true
local t0 = U.now()
for _ = 1, STEPS do step() end
local total = (U.now() - t0) / STEPS
on = false
local keys, sum = {}, 0
for k, v in pairs(T) do keys[#keys + 1] = k; sum = sum + v end
table.sort(keys, function(a, b) return T[a] > T[b] end)
print(("%s b%d: %.1f ms/step (timed ops %.1f ms, other %.1f)"):format(MODE, B, total * 1000, sum / STEPS * 1000, (total - sum / STEPS) * 1000))
for _, k in ipairs(keys) do print(("%-22s %8.1f ms %5.1f%%  n=%d"):format(k, T[k] / STEPS * 1000, 100 * T[k] / STEPS / total, N[k] / STEPS)) end
