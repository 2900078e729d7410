--- spore.Model — MindSpore's high-level train/eval wrapper.
--   local model = spore.Model(net, loss, opt, {metrics = {"accuracy", "top5", "loss"}})
--   model:train(epochs, ds, {callbacks = {LossMonitor(100)}, initial_epoch = 0, steps = nil})
--   local r = model:eval(ds)          -- {accuracy=, top5=, loss=, samples=}
--   local logits = model:predict(x)   -- eval mode, restored afterwards
-- Contracts: net:forward(x) → logits [N,K]; net:backward(x, grad) accumulates
-- param grads; net:zero_grad(); net:train()/net:eval(); net.training.
-- loss:forward(logits, labels) → number (batch mean); loss:backward() → grad.
-- opt:step(); opt:get_global_step().
local T = require("spore.tensor")
local B = require("ffi.data")
local Metrics = require("spore.train.metrics")
local cbs = require("spore.train.callbacks")
local class = require("spore.class")

local Model = class("Model")

local function number_of(l)
  if T.is_tensor(l) then return l:item() end
  if type(l) ~= "number" then error("Model: loss:forward must return a number (or a one-element tensor), got " .. type(l), 3) end
  return l
end

--- Model.new(net, loss, opt, opts{metrics=}) — loss and opt may be nil (eval/predict only).
function Model.new(net, loss, opt, opts)
  if type(net) ~= "table" or type(net.forward) ~= "function" then
    error("Model: net must be a module with forward(x)", 2)
  end
  opts = opts or {}
  local names = opts.metrics
  if type(names) == "string" then names = { names } end
  if not names then names = loss and { "accuracy", "loss" } or { "accuracy" } end
  for _, n in ipairs(names) do Metrics.canonical(n) end
  return setmetatable({ network = net, loss_fn = loss, optimizer = opt, metric_names = names }, Model)
end

-- the device the net's parameters live on ("cpu" for a net without :device())
local function device_of(net)
  if type(net.device) == "function" then return net:device() end
  return "cpu"
end
-- a batch tensor on the net's device (one explicit copy when it lives elsewhere)
local function on(dev, t)
  if T.is_tensor(t) and t:device() ~= dev then return t:to(dev) end
  return t
end

local function call(list, method, ctx)
  for _, cb in ipairs(list) do
    if type(cb) == "function" then
      if method == "on_train_step_end" then cb(ctx) end
    elseif cb[method] then
      cb[method](cb, ctx)
    end
  end
end

-- run fn with the net in eval mode, restoring the previous mode (also on error)
local function in_eval(net, fn, ...)
  local was = net.training
  if net.eval then net:eval() end
  local res = { pcall(fn, ...) }
  if was and net.train then net:train() end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

--- Train for epochs (total, counted from 1; with initial_epoch = k, epochs k+1..epochs run).
-- opts: callbacks (list), initial_epoch (0), steps (per-epoch cap), progress
-- (nil: a progress bar when stdout is a terminal; false: never; true: always).
-- Returns ctx (cur_epoch_num, cur_step_num, net_outputs = the last loss, ...).
function Model:train(epochs, dataset, opts)
  opts = opts or {}
  local net, loss, opt = self.network, self.loss_fn, self.optimizer
  if not loss or not opt then error("Model:train needs a loss and an optimizer", 2) end
  if type(epochs) ~= "number" or epochs < 1 then error("Model:train: epochs must be a positive integer", 2) end
  if type(dataset) ~= "table" or not dataset.batches then error("Model:train: dataset must have :batches()", 2) end
  local initial = opts.initial_epoch or 0
  if initial < 0 or initial >= epochs then
    error("Model:train: initial_epoch " .. initial .. " must be in [0, epochs)", 2)
  end
  local per_epoch = dataset:num_batches()
  if opts.steps then per_epoch = math.min(per_epoch, opts.steps) end
  if per_epoch < 1 then error("Model:train: the dataset yields no batch (size " .. tostring(dataset:size()) .. ")", 2) end
  local list = {}
  -- the bar goes first: its line is finished before other callbacks print
  if opts.progress == true or (opts.progress == nil and B.isatty(1)) then list[1] = cbs.ProgressBar() end
  for _, cb in ipairs(opts.callbacks or {}) do list[#list + 1] = cb end
  local ctx = {
    epoch_num = epochs, cur_epoch_num = initial, cur_step_num = initial * per_epoch, batch_num = per_epoch,
    initial_epoch = initial, train_network = net, network = net, optimizer = opt, loss_fn = loss,
    train_dataset = dataset, model = self, step_in_epoch = 0,
  }
  function ctx.original_args(c) return c end
  function ctx.request_stop(c) c._stop = true end
  if net.train then net:train() end
  local dev = device_of(net)
  call(list, "on_train_begin", ctx)
  for epoch = initial + 1, epochs do
    ctx.cur_epoch_num = epoch
    ctx.step_in_epoch = 0
    call(list, "on_train_epoch_begin", ctx)
    local step = 0
    for x, y in dataset:batches() do
      x, y = on(dev, x), on(dev, y)
      step = step + 1
      ctx.cur_step_num = ctx.cur_step_num + 1
      ctx.step_in_epoch = step
      ctx.batch_size = x:size(1)
      call(list, "on_train_step_begin", ctx)
      if net.zero_grad then net:zero_grad() end
      local logits = net:forward(x)
      local l = number_of(loss:forward(logits, y))
      -- nobody needs d(loss)/d(images); the loss gradient goes where the net is (a no-op when
      -- the loss already allocates on the logits' device)
      net:backward(x, loss:backward(), false)
      opt:step()
      ctx.net_outputs, ctx.loss = l, l
      call(list, "on_train_step_end", ctx)
      if ctx._stop or step >= per_epoch then break end
    end
    call(list, "on_train_epoch_end", ctx)
    if ctx._stop then break end
  end
  call(list, "on_train_end", ctx)
  return ctx
end

--- Evaluate: {accuracy=, top5=, loss=, samples=} for the model's metrics.
-- The net runs in eval mode (BN uses moving statistics); its mode is restored.
-- opts: steps (cap on batches).
function Model:eval(dataset, opts)
  opts = opts or {}
  local net, lossf = self.network, self.loss_fn
  local m = Metrics.new(self.metric_names)
  local want_loss = m:wants("loss")
  if want_loss and not lossf then error("Model:eval: metric 'loss' needs a loss function", 2) end
  local dev = device_of(net)
  return in_eval(net, function()
    local steps = 0
    for x, y in dataset:batches() do
      steps = steps + 1
      x, y = on(dev, x), on(dev, y)
      local logits = net:forward(x)
      local l = want_loss and number_of(lossf:forward(logits, y)) or nil
      -- metrics accumulate on the host, as MindSpore's do (asnumpy): one explicit copy of
      -- the [N, K] logits and the labels per batch, nothing when the net is on the cpu
      m:update(logits, y, l)
      if opts.steps and steps >= opts.steps then break end
    end
    return m:eval()
  end)
end

--- Logits for one batch, computed in eval mode (mode restored), on the net's device (x
-- moves there first). The result may be the net's reused output buffer: clone it to keep
-- it past the next forward.
function Model:predict(x)
  local net = self.network
  x = on(device_of(net), x)
  return in_eval(net, function() return net:forward(x) end)
end

return Model
