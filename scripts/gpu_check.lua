--- scripts/gpu_check.lua — the measuring half of scripts/gpu_check.sh (one JSON line per
-- call, on stdout). Subcommands:
--   fmnist DEVICE AMP DATA_DIR   one epoch of LeNet5 on Fashion-MNIST (batch 32, Momentum
--                                lr 0.01 / 0.9, seed 1: train.lua's defaults), then t10k-style
--                                test accuracy; AMP is O0 or O2 (spore.Model's amp_level)
--   resnet DEVICE BATCH AMP      ResNet50 (1001 classes, 224x224): forward images/s (eval mode)
--                                and training images/s (Model:train steps: forward, loss,
--                                backward, Momentum; the loss read back every step)
-- A failure prints {"error": "..."} and exits 0, so the caller reports it and goes on.
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local json = require("spore.json")

local function emit(t) io.write(json.encode(t), "\n") io.flush() end

local function amp_opts(amp)
  if amp == "O0" then return {} end
  return { amp_level = amp }
end

local function fmnist(device, amp, dir)
  spore.set_default_device(device)
  spore.manual_seed(1)
  local wf = require("spore.workflow")
  local function usage(m) error(m, 0) end
  local ds = wf.dataset("fashion-mnist", dir, "lenet5", { split = "train", batch = 32, shuffle = true, seed = 1,
    drop_remainder = true }, usage)
  local test = wf.dataset("fashion-mnist", dir, "lenet5", { split = "test", batch = 256, shuffle = false }, usage)
  local net = spore.models.lenet5()
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local o = amp_opts(amp)
  o.metrics = { "accuracy", "loss" }
  local model = spore.Model(net, loss, opt, o)
  local t0 = spore.clock()
  model:train(1, ds, { progress = false })
  local secs = spore.clock() - t0
  local m = model:eval(test)
  return { device = device, amp = amp, accuracy = m.accuracy, loss = m.loss, train_seconds = secs,
    param_device = net:trainable_params()[1].data:device() }
end

local function resnet(device, batch, amp)
  spore.set_default_device(device)
  spore.manual_seed(1)
  local net = spore.models.resnet50 { class_num = 1001 }
  local x = spore.randn({ batch, 3, 224, 224 }):to(device)
  local y = spore.zeros({ batch }, "int32"):to(device)
  local res = { device = device, batch = batch, amp = amp }
  -- forward, eval mode
  net:eval()
  local function fwd() return net(x):sum() end -- the sum reads the logits back: a sync
  fwd()
  local iters = batch >= 128 and 5 or 10
  local t0 = spore.clock()
  for _ = 1, iters do fwd() end
  res.forward_images_per_s = iters * batch / (spore.clock() - t0)
  net:train()
  -- training: Model:train over a dataset that yields the same device batch
  local steps = batch >= 128 and 6 or 12
  local ds = { name = "synthetic" }
  function ds:batches()
    local i = 0
    return function()
      i = i + 1
      if i <= self.n then return x, y end
    end
  end
  function ds:num_batches() return self.n end
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local model = spore.Model(net, loss, opt, amp_opts(amp))
  ds.n = 2
  model:train(1, ds, { progress = false }) -- warm-up: cuDNN algorithm choice, allocator cache
  ds.n = steps
  t0 = spore.clock()
  model:train(1, ds, { progress = false })
  res.train_images_per_s = steps * batch / (spore.clock() - t0)
  return res
end

local cmd = arg[1]
local ok, r = pcall(function()
  if cmd == "fmnist" then return fmnist(arg[2], arg[3], arg[4]) end
  if cmd == "resnet" then return resnet(arg[2], tonumber(arg[3]), arg[4]) end
  error("usage: gpu_check.lua fmnist DEVICE AMP DIR | resnet DEVICE BATCH AMP", 0)
end)
if not ok then emit({ error = (tostring(r):gsub("^[^\n]-%.lua:%d+: ", ""):match("^[^\n]*")) }) else emit(r) end
