--- spore.Model — MindSpore's high-level train/eval wrapper.
--   local model = spore.Model(net, loss, opt, {metrics = {"accuracy", "top5", "loss"}})
--   model:train(epochs, ds, {callbacks = {LossMonitor(100)}, initial_epoch = 0, steps = nil,
--                            allow_nonfinite = false})
--   local r = model:eval(ds)          -- {accuracy=, top5=, loss=, samples=}
--   local logits = model:predict(x)   -- eval mode, restored afterwards
-- Contracts: net:forward(x) → logits [N,K]; net:backward(x, grad) accumulates
-- param grads; net:zero_grad(); net:train()/net:eval(); net.training.
-- loss:forward(logits, labels) → number (batch mean); loss:backward() → grad.
-- opt:step(); opt:get_global_step().
-- Training notices: a non-finite loss, or a non-finite value in a trained parameter after
-- an optimizer step, stops training with an error naming the step and the first bad
-- parameter ("step 7: parameter 'fc1.weight' is not finite ..."), unless allow_nonfinite.
-- The parameter check is one engine sum per flat optimizer buffer per step (a NaN or Inf
-- anywhere makes the sum non-finite); the per-parameter sums run only to name the culprit.
local T = require("spore.tensor")
local B = require("ffi.data")
local Metrics = require("spore.train.metrics")
local cbs = require("spore.train.callbacks")
local class = require("spore.class")
local LossScale = require("spore.train.loss_scale")

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
  -- loss scale (spore.train.loss_scale): a FixedLossScaleManager or DynamicLossScaleManager
  local lsm = opts.loss_scale_manager
  if lsm ~= nil and not require("spore.train.loss_scale").is_manager(lsm) then
    error("Model: loss_scale_manager must be a FixedLossScaleManager or DynamicLossScaleManager, got " .. tostring(lsm), 2)
  end
  return setmetatable({ network = net, loss_fn = loss, optimizer = opt, metric_names = names,
    loss_scale_manager = lsm }, Model)
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

local function nonfinite(v) return v ~= v or v == math.huge or v == -math.huge end
local function fmt_num(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return tostring(v)
end
local function float_tensor(d) return T.is_tensor(d) and d:numel() > 0 and d:dtype():match("float") ~= nil end

--- Model.first_nonfinite(net, opt) → the name of the first parameter (network order, then
-- the optimizer's state) holding a NaN or Inf, or nil. One engine sum per tensor.
function Model.first_nonfinite(net, opt)
  local owners = {}
  for _, o in ipairs({ net or false, opt or false }) do
    if o and type(o.parameters_and_names) == "function" then owners[#owners + 1] = o end
  end
  for _, kv in ipairs(cbs.training_state(owners[1], owners[2])) do
    local d = kv[2].data
    if float_tensor(d) and nonfinite(d:sum()) then return kv[1] end
  end
  return nil
end

-- true when every parameter the optimizer trains is finite: one sum per flat buffer (the
-- optimizer keeps one per bucket), or one per parameter for an optimizer without buckets
local function trained_finite(opt, net)
  local bks = rawget(opt, "buckets")
  if type(bks) == "table" and #bks > 0 then
    for i = 1, #bks do
      if nonfinite(bks[i].pbuf:sum()) then return false end
    end
    return true
  end
  local ps = rawget(opt, "params")
  if type(ps) ~= "table" and type(net.trainable_params) == "function" then ps = net:trainable_params() end
  for _, p in ipairs(ps or {}) do
    if float_tensor(p.data) and nonfinite(p.data:sum()) then return false end
  end
  return true
end

local function stop_nonfinite(ctx, what)
  error(("step %d: %s (epoch %d); training stopped (allow_nonfinite = true trains on)")
    :format(ctx.cur_step_num, what, ctx.cur_epoch_num), 0)
end

local function check_params(ctx, net, opt, full)
  if full or not trained_finite(opt, net) then
    local bad = Model.first_nonfinite(net, opt)
    if bad then stop_nonfinite(ctx, "parameter '" .. bad .. "' is not finite") end
  end
end

local TRAIN_OPTS = { callbacks = "table", initial_epoch = "number", steps = "number", progress = "boolean",
  allow_nonfinite = "boolean" }

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
-- (nil: a progress bar when stdout is a terminal; false: never; true: always),
-- allow_nonfinite (false: a NaN/Inf loss or parameter stops training with an error naming
-- the step and the parameter; true: train on, and ModelCheckpoint saves such weights).
-- Returns ctx (cur_epoch_num, cur_step_num, net_outputs = the last loss, ...).
function Model:train(epochs, dataset, opts)
  if opts ~= nil and type(opts) ~= "table" then error("Model:train: opts must be a table, got " .. type(opts), 2) end
  opts = opts or {}
  for k, v in pairs(opts) do
    local want = TRAIN_OPTS[k]
    if not want then error("Model:train: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then error("Model:train: option '" .. k .. "' must be a " .. want .. ", got " .. type(v), 2) end
  end
  local net, loss, opt = self.network, self.loss_fn, self.optimizer
  if not loss or not opt then error("Model:train needs a loss and an optimizer", 2) end
  if type(epochs) ~= "number" or epochs < 1 or epochs ~= math.floor(epochs) then
    error("Model:train: epochs must be a positive integer, got " .. tostring(epochs), 2)
  end
  if type(dataset) ~= "table" or not dataset.batches then error("Model:train: dataset must have :batches()", 2) end
  local initial = opts.initial_epoch or 0
  if initial < 0 or initial >= epochs or initial ~= math.floor(initial) then
    error("Model:train: initial_epoch " .. initial .. " must be an integer in [0, epochs)", 2)
  end
  if opts.steps and (opts.steps < 1 or opts.steps ~= math.floor(opts.steps)) then
    error("Model:train: steps must be a positive integer, got " .. tostring(opts.steps), 2)
  end
  local allow = opts.allow_nonfinite == true
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
    train_dataset = dataset, model = self, step_in_epoch = 0, allow_nonfinite = allow,
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
      if not allow and nonfinite(l) then stop_nonfinite(ctx, "loss is " .. fmt_num(l)) end
      -- nobody needs d(loss)/d(images); the loss gradient goes where the net is (a no-op when
      -- the loss already allocates on the logits' device)
      -- backward and optimizer step, with the loss scale when there is a loss_scale_manager
      -- (spore.train.loss_scale: MindSpore's TrainOneStepCell / TrainOneStepWithLossScaleCell)
      local stepped = LossScale.backward_and_step(self, net, loss, opt, x, ctx)
      if stepped and not allow then check_params(ctx, net, opt, false) end
      ctx.net_outputs, ctx.loss = l, l
      call(list, "on_train_step_end", ctx)
      if ctx._stop or step >= per_epoch then break end
    end
    call(list, "on_train_epoch_end", ctx)
    if ctx._stop then break end
  end
  -- once at the end, everything the training state holds (BatchNorm statistics, frozen
  -- parameters, optimizer state), before the callbacks save it
  if not allow then check_params(ctx, net, opt, true) end
  call(list, "on_train_end", ctx)
  return ctx
end

--- Evaluate: {accuracy=, top5=, loss=, samples=} for the model's metrics.
-- The net runs in eval mode (BN uses moving statistics); its mode is restored.
-- opts: steps (cap on batches).
function Model:eval(dataset, opts)
  if type(dataset) ~= "table" or type(dataset.batches) ~= "function" then
    error("Model:eval: dataset must have :batches(), got " .. type(dataset), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("Model:eval: opts must be a table, got " .. type(opts), 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "steps" then error("Model:eval: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts.steps ~= nil and (type(opts.steps) ~= "number" or opts.steps < 1 or opts.steps ~= math.floor(opts.steps)) then
    error("Model:eval: steps must be a positive integer, got " .. tostring(opts.steps), 2)
  end
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
    -- an accuracy of 0 over no sample would read as a result: nothing was evaluated
    if m.count == 0 then
      local what = dataset.name or tostring(dataset)
      error("Model:eval: dataset '" .. tostring(what) .. "' yields no sample: nothing to evaluate", 0)
    end
    return m:eval()
  end)
end

--- Logits for one batch, computed in eval mode (mode restored), on the net's device (x
-- moves there first). The result may be the net's reused output buffer: clone it to keep
-- it past the next forward.
function Model:predict(x)
  if not T.is_tensor(x) then error("Model:predict: x must be a Tensor, got " .. type(x), 2) end
  local net = self.network
  x = on(device_of(net), x)
  return in_eval(net, function() return net:forward(x) end)
end

return Model
