--- spore.Model — MindSpore's high-level train/eval wrapper (mindspore/train/model.py, 2.10).
--   local model = spore.Model(net, loss, opt, {metrics = {"accuracy", "loss"}})
--   model:train(epoch, ds, {callbacks = cb_or_list, initial_epoch = 0, dataset_sink_mode = false,
--                           steps = nil, progress = nil, allow_nonfinite = false})
--   model:fit(epoch, train_ds, valid_ds, {valid_frequency = 1 | {epochs}, callbacks =, initial_epoch =,
--                                          valid_dataset_sink_mode =, ...})
--   local r = model:eval(ds, {callbacks = cb_or_list})  -- {accuracy=, loss=, ...}: the metrics' names
--   local logits = model:predict(x)   -- eval mode, restored afterwards
--   model.train_network               -- MindSpore's TrainOneStepCell: save_checkpoint(model.train_network)
-- metrics: a list of names, MindSpore's set ({acc = true}) or dict ({top = TopKCategoricalAccuracy(3)},
-- {acc = "accuracy"}); result keys are the names given (spore.train.metrics).
-- Counters as MindSpore's cb_params: epoch_num = epoch - initial_epoch; cur_epoch_num runs
-- initial_epoch+1..epoch; cur_step_num counts from 0 in every call (it does not continue after
-- initial_epoch; the optimizer's global_step does); batch_num = steps per epoch.
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
local optcheck = require("spore.opts")
local LossScale = require("spore.train.loss_scale")
local Amp = require("spore.train.amp")

local Model = class("Model")

local function number_of(l)
  if T.is_tensor(l) then return l:item() end
  if type(l) ~= "number" then error("Model: loss:forward must return a number (or a one-element tensor), got " .. type(l), 3) end
  return l
end

---------------------------------------------------------------- train_network
--- MindSpore's TrainOneStepCell(WithLossCell(net, loss), optimizer) as far as its parameters
-- go: parameters_and_names() yields MindSpore's order (checked against MindSpore 2.10 by
-- scripts/gen/gen_ms_fidelity_model.py): the parameters the optimizer trains (its order), the
-- network's other parameters (BatchNorm moving statistics, frozen ones), then the optimizer's
-- state with global_step first (global_step, learning_rate, momentum, moments.*).
local TrainNetwork = class("TrainOneStepCell")
Model.TrainNetwork = TrainNetwork
function TrainNetwork:__init(network, optimizer, loss_fn)
  self.network, self.optimizer, self.loss_fn = network, optimizer, loss_fn
end
function TrainNetwork:parameters_and_names()
  local out, seen, names = {}, {}, {}
  local function add(n, p)
    if not seen[p] and not names[n] then seen[p], names[n] = true, true; out[#out + 1] = { n, p } end
  end
  local netp = self.network:parameters_and_names() -- (re)sets the parameters' names
  local opt = self.optimizer
  local op = (opt and type(opt.parameters_and_names) == "function") and opt:parameters_and_names() or {}
  local trained = {}
  for _, p in ipairs(rawget(opt or {}, "params") or {}) do trained[p] = true; add(p.name, p) end
  for _, kv in ipairs(netp) do add(kv[1], kv[2]) end
  local rest = {}
  for _, kv in ipairs(op) do
    if not seen[kv[2]] then
      if kv[1] == "global_step" then add(kv[1], kv[2]) else rest[#rest + 1] = kv end
    end
  end
  for _, kv in ipairs(rest) do add(kv[1], kv[2]) end
  return out
end
function TrainNetwork:parameters()
  local r = {}
  for i, e in ipairs(self:parameters_and_names()) do r[i] = e[2] end
  return r
end
TrainNetwork.get_parameters = TrainNetwork.parameters
function TrainNetwork:parameters_dict()
  local r = {}
  for _, e in ipairs(self:parameters_and_names()) do r[e[1]] = e[2] end
  return r
end
function TrainNetwork:trainable_params()
  local r = {}
  for _, p in ipairs(rawget(self.optimizer or {}, "params") or {}) do r[#r + 1] = p end
  return r
end

-- Model's options: MindSpore's keyword arguments (network, loss_fn, optimizer are positional)
local MODEL_KEYS = { "metrics", "amp_level", "boost_level", "loss_scale_manager" }
local MODEL_REFUSED = {
  eval_network = "spore evaluates net with loss_fn (pass loss and metrics)",
  eval_indexes = "spore evaluates net with loss_fn (pass loss and metrics)",
  keep_batchnorm_fp32 = "spore keeps BatchNorm in float32 (amp_level O2; O3 is not implemented)",
  boost_config_dict = "boost is not implemented (boost_level O0 only)",
  acc_level = "boost is not implemented (boost_level O0 only)",
}
Model.OPTIONS, Model.REFUSED = MODEL_KEYS, MODEL_REFUSED

--- Model.new(net, loss, opt, opts{metrics=, amp_level="O0", boost_level="O0"}) — loss and opt
-- may be nil (eval/predict only). Without metrics: {"accuracy", "loss"} ({"accuracy"} without a
-- loss), spore's default (MindSpore's eval needs metrics).
function Model.new(net, loss, opt, opts)
  if type(net) ~= "table" or type(net.forward) ~= "function" then
    error("Model: net must be a module with forward(x)", 2)
  end
  opts = optcheck.check("spore.Model", opts, MODEL_KEYS, MODEL_REFUSED,
    { metrics = { "table", "string" }, amp_level = "string", boost_level = "string" })
  if opts.boost_level ~= nil and opts.boost_level ~= "O0" then
    error(("spore.Model: option 'boost_level' = '%s' is MindSpore's, but spore does not implement it (only 'O0')")
      :format(opts.boost_level), 2)
  end
  -- amp_level "O2": Conv2d/Dense in bfloat16, BatchNorm and the loss in float32 (spore.train.amp)
  if opts.amp_level ~= nil then
    Amp.check(opts.amp_level, "spore.Model", 3)
    if opts.amp_level ~= "O0" then Amp.auto_mixed_precision(net, opts.amp_level) end
  end
  local spec = opts.metrics
  if spec == nil then spec = loss and { "accuracy", "loss" } or { "accuracy" } end
  local self = setmetatable({ network = net, loss_fn = loss, optimizer = opt, metrics = spec }, Model)
  self.metric_names = {}
  -- names checked now, as MindSpore's get_metrics
  for i, e in ipairs(Metrics.resolve(spec, 2)) do self.metric_names[i] = e[1] end
  -- loss scale (spore.train.loss_scale): a FixedLossScaleManager or DynamicLossScaleManager
  local lsm = opts.loss_scale_manager
  if lsm ~= nil and not LossScale.is_manager(lsm) then
    error("spore.Model: loss_scale_manager must be a FixedLossScaleManager or DynamicLossScaleManager, got " .. tostring(lsm), 2)
  end
  self.loss_scale_manager = lsm
  self.train_network = opt and TrainNetwork(net, opt, loss) or net
  self.eval_network, self.predict_network = net, net
  return self
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

local call
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

---------------------------------------------------------------- options
local RUN_TYPES = { callbacks = { "table", "function" }, initial_epoch = "integer", steps = "integer",
  progress = "boolean", allow_nonfinite = "boolean", dataset_sink_mode = "boolean", sink_size = "integer",
  valid_frequency = { "integer", "table" }, valid_dataset_sink_mode = "boolean" }
local TRAIN_KEYS = { "callbacks", "dataset_sink_mode", "sink_size", "initial_epoch", "steps", "progress", "allow_nonfinite" }
local FIT_KEYS = { "callbacks", "dataset_sink_mode", "valid_dataset_sink_mode", "sink_size", "initial_epoch",
  "valid_frequency", "steps", "progress", "allow_nonfinite" }
local EVAL_KEYS = { "callbacks", "dataset_sink_mode", "steps" }
Model.TRAIN_OPTIONS, Model.FIT_OPTIONS, Model.EVAL_OPTIONS = TRAIN_KEYS, FIT_KEYS, EVAL_KEYS

--- callbacks as MindSpore's _transform_callbacks: nil → {}, one callback (an object or a
-- function) → {it}, a list → the list
local function callback_list(where, cbl)
  if cbl == nil then return {} end
  if type(cbl) == "function" then return { cbl } end
  if type(cbl) ~= "table" then error(where .. ": callbacks must be a callback or a list of them, got " .. type(cbl), 3) end
  -- one callback object (a class instance may have no field of its own)
  if cbl[1] == nil and (next(cbl) ~= nil or getmetatable(cbl) ~= nil) then return { cbl } end
  local out = {}
  for i, cb in ipairs(cbl) do
    if type(cb) ~= "table" and type(cb) ~= "function" then
      error(("%s: callbacks[%d] must be a callback object or a function, got %s"):format(where, i, type(cb)), 3)
    end
    out[i] = cb
  end
  return out
end

-- MindSpore's Callback base maps the on_train_*/on_eval_* hooks to the old-style names
local LEGACY = { on_train_begin = "begin", on_train_epoch_begin = "epoch_begin", on_train_epoch_end = "epoch_end",
  on_train_step_begin = "step_begin", on_train_step_end = "step_end", on_train_end = "end",
  on_eval_begin = "begin", on_eval_epoch_begin = "epoch_begin", on_eval_epoch_end = "epoch_end",
  on_eval_step_begin = "step_begin", on_eval_step_end = "step_end", on_eval_end = "end" }
call = function(list, method, ctx)
  for _, cb in ipairs(list) do
    if type(cb) == "function" then
      if method == "on_train_step_end" then cb(ctx) end
    else
      local f = cb[method]
      if f == nil and LEGACY[method] then f = cb[LEGACY[method]] end
      if f then f(cb, ctx) end
    end
  end
end

-- (MindSpore: dataset_sink_mode on CPU trains without sinking, as spore always does)
local function check_sink(where, o)
  if o.sink_size ~= nil and o.sink_size ~= -1 then
    error(where .. ": option 'sink_size' is MindSpore's, but spore does not implement it (no dataset sink; only -1)", 3)
  end
end

local function check_dataset(where, ds, what)
  if type(ds) ~= "table" or type(ds.batches) ~= "function" then
    error(("%s: %s must have :batches(), got %s"):format(where, what, type(ds)), 3)
  end
end

-- run fn with the net in eval mode, restoring the previous mode (also on error)
local chain = require("spore.nn.chain")
-- eval mode, and spore.inference_mode (under O2, bf16 activations between the fused convs)
local function in_eval(net, fn, ...)
  local was = net.training
  if net.eval then net:eval() end
  local res = { pcall(chain.inference_mode, fn, ...) }
  if was and net.train then net:train() end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

---------------------------------------------------------------- spore.dist (data parallel)
-- The one place Model meets spore.dist (lua/spore/dist): nothing happens unless a script has
-- initialised it (package.loaded holds it only then), so a single process never loads MPI.
-- train: dist.attach (state broadcast from rank 0, the sharded dataset, the callbacks this
-- rank runs); each step: dist.train_step (gradient all-reduce overlapping backward, waited
-- before the optimizer step); eval: dist.eval_shard + dist.reduce_metrics.
local function dist_active()
  local d = package.loaded["spore.dist"]
  if d and d.active then return d end
  return nil
end

---------------------------------------------------------------- one step
--- One training step on batch (x, y): forward, loss, backward, optimizer step. Returns the
-- loss (a number). All of a step's arithmetic is here (one place for hooks such as loss scale).
function Model:_train_step(x, y, ctx)
  local net, loss, opt = self.network, self.loss_fn, self.optimizer
  if net.zero_grad then net:zero_grad() end
  local logits = net:forward(x)
  local l = number_of(loss:forward(logits, y))
  if not ctx.allow_nonfinite and nonfinite(l) then stop_nonfinite(ctx, "loss is " .. fmt_num(l)) end
  -- backward (nobody needs d(loss)/d(images)) and the optimizer step, with the loss scale when
  -- there is a loss_scale_manager (spore.train.loss_scale: MindSpore's TrainOneStepCell /
  -- TrainOneStepWithLossScaleCell; an overflow skips the step)
  local dd = dist_active()
  local stepped
  if dd then stepped = dd.train_step(self, net, loss, opt, x, ctx, LossScale.backward_and_step)
  else stepped = LossScale.backward_and_step(self, net, loss, opt, x, ctx) end
  if stepped and not ctx.allow_nonfinite then check_params(ctx, net, opt, false) end
  return l
end

---------------------------------------------------------------- evaluation
-- MindSpore's _eval_process: on_eval_begin, on_eval_epoch_begin, per batch
-- on_eval_step_begin/_end (cur_step_num from 0), on_eval_epoch_end, metrics, on_eval_end.
-- add_eval_loss (fit): ctx.eval_results = metrics + eval_loss (the last batch's loss, as MindSpore).
function Model:_eval_process(dataset, list, ctx, steps, add_eval_loss)
  local net, lossf = self.network, self.loss_fn
  local dd = dist_active()
  if dd then dataset = dd.eval_shard(dataset) end
  local m = Metrics.new(self.metrics)
  local want_loss = m:wants("loss") or add_eval_loss
  if want_loss and not lossf then error("Model:eval: metric 'loss' needs a loss function", 3) end
  local eval_loss = Metrics.Loss()
  local dev = device_of(net)
  ctx.mode, ctx.cur_step_num, ctx.dataset_sink_mode = "eval", 0, false
  ctx.valid_dataset, ctx.eval_network = dataset, net
  ctx.batch_num = dataset.num_batches and dataset:num_batches() or ctx.batch_num
  call(list, "on_eval_begin", ctx)
  local result = in_eval(net, function()
    call(list, "on_eval_epoch_begin", ctx)
    local n = 0
    for x, y in dataset:batches() do
      n = n + 1
      ctx.cur_step_num = ctx.cur_step_num + 1
      x, y = on(dev, x), on(dev, y)
      ctx.eval_dataset_element = { x, y }
      call(list, "on_eval_step_begin", ctx)
      local logits = net:forward(x)
      local l = want_loss and number_of(lossf:forward(logits, y)) or nil
      ctx.net_outputs = { l, logits, y }
      call(list, "on_eval_step_end", ctx)
      m:update(logits, y, l)
      -- as MindSpore 2.10's _eval_process, whose eval_loss metric is made anew in every step:
      -- eval_loss is the LAST batch's loss (the "loss" metric is the mean over the batches)
      if add_eval_loss then eval_loss = Metrics.Loss(); eval_loss:update(l) end
      if ctx._stop or (steps and n >= steps) then break end
    end
    if dd then dd.reduce_metrics(m) end
    -- an accuracy of 0 over no sample would read as a result: nothing was evaluated
    if m.count == 0 then
      local what = dataset.name or tostring(dataset)
      error("Model:eval: dataset '" .. tostring(what) .. "' yields no sample: nothing to evaluate", 0)
    end
    call(list, "on_eval_epoch_end", ctx)
    ctx._samples = m.count
    return m:eval()
  end)
  ctx.metrics = result
  if add_eval_loss then
    local er = {}
    for k, v in pairs(result) do er[k] = v end
    er.eval_loss = eval_loss:eval()
    ctx.eval_results = er
  end
  call(list, "on_eval_end", ctx)
  return result
end

--- Evaluate: {name = value} for the model's metrics (keys as given to Model), and spore's
-- `samples` (the number of samples evaluated).
-- The net runs in eval mode (BN uses moving statistics); its mode is restored.
-- opts: callbacks (one or a list; on_eval_* hooks), dataset_sink_mode, steps (cap on batches).
function Model:eval(dataset, opts)
  check_dataset("Model:eval", dataset, "dataset")
  opts = optcheck.check("Model:eval", opts, EVAL_KEYS, { sink_size = "no dataset sink in spore" }, RUN_TYPES)
  if opts.steps ~= nil and opts.steps < 1 then
    error("Model:eval: steps must be a positive integer, got " .. tostring(opts.steps), 2)
  end
  local list = callback_list("Model:eval", opts.callbacks)
  local ctx = { network = self.network, mode = "eval", model = self }
  function ctx.original_args(c) return c end
  function ctx.request_stop(c) c._stop = true end
  function ctx.get_stop_requested(c) return c._stop == true end
  local r = self:_eval_process(dataset, list, ctx, opts.steps, false)
  local out = {}
  for k, v in pairs(r) do out[k] = v end
  -- spore's addition: how many samples were evaluated (not in the callbacks' ctx.metrics)
  if out.samples == nil then out.samples = ctx._samples end
  return out
end

---------------------------------------------------------------- training
local function should_eval(epoch, freq)
  if type(freq) == "number" then return epoch % freq == 0 end
  for _, e in ipairs(freq) do if e == epoch then return true end end
  return false
end

-- the callbacks fit's evaluation calls: the user's own, and of spore's built-ins only
-- TimeMonitor (MindSpore's _eval_during_train filters its internal callbacks so)
local function eval_callbacks(list)
  local out = {}
  for _, cb in ipairs(list) do
    if type(cb) == "table" then
      local mt = getmetatable(cb)
      local internal = mt and rawget(mt, "__internal_callback")
      if not internal or (mt and mt.__name == "TimeMonitor") then out[#out + 1] = cb end
    end
  end
  return out
end

-- MindSpore's _train + _train_process (non-sink).
function Model:_train(where, epochs, dataset, opts, valid)
  local net, loss, opt = self.network, self.loss_fn, self.optimizer
  if not loss or not opt then error(where .. " needs a loss and an optimizer", 3) end
  if type(epochs) ~= "number" or epochs < 1 or epochs ~= math.floor(epochs) then
    error(where .. ": epoch must be a positive integer, got " .. tostring(epochs), 3)
  end
  check_dataset(where, dataset, "train_dataset")
  check_sink(where, opts)
  local initial = opts.initial_epoch or 0
  if initial < 0 then error(where .. ": initial_epoch must be a non-negative integer, got " .. initial, 3) end
  if initial >= epochs then
    error(("%s: the parameter 'epoch' must be bigger than parameter 'initial_epoch', but got epoch %d, initial_epoch %d")
      :format(where, epochs, initial), 3)
  end
  if opts.steps and opts.steps < 1 then error(where .. ": steps must be a positive integer, got " .. tostring(opts.steps), 3) end
  local allow = opts.allow_nonfinite == true
  local user = callback_list(where, opts.callbacks)
  local dd = dist_active()
  if dd then dataset, user = dd.attach(self, dataset, user) end
  local per_epoch = dataset:num_batches()
  if opts.steps then per_epoch = math.min(per_epoch, opts.steps) end
  if per_epoch < 1 then error(where .. ": the dataset yields no batch (size " .. tostring(dataset:size()) .. ")", 3) end
  local list = {}
  -- the bar goes first: its line is finished before other callbacks print
  if opts.progress == true or (opts.progress == nil and B.isatty(1)) then list[1] = cbs.ProgressBar() end
  for _, cb in ipairs(user) do list[#list + 1] = cb end
  local ctx = {
    epoch_num = epochs - initial, cur_epoch_num = initial, cur_step_num = 0, batch_num = per_epoch,
    initial_epoch = initial, train_network = self.train_network, network = net, optimizer = opt, loss_fn = loss,
    train_dataset = dataset, model = self, step_in_epoch = 0, allow_nonfinite = allow, mode = "train",
    dataset_sink_mode = false, list_callback = list,
  }
  function ctx.original_args(c) return c end
  function ctx.request_stop(c) c._stop = true end
  function ctx.get_stop_requested(c) return c._stop == true end
  self._current_epoch_num, self._current_step_num = initial, 0
  local ok, err = pcall(function()
    if net.train then net:train() end
    local dev = device_of(net)
    call(list, "on_train_begin", ctx)
    for epoch = initial + 1, epochs do
      ctx.cur_epoch_num = epoch
      self._current_epoch_num, self._current_step_num = epoch, 0
      ctx.step_in_epoch = 0
      call(list, "on_train_epoch_begin", ctx)
      local step = 0
      for x, y in dataset:batches() do
        x, y = on(dev, x), on(dev, y)
        step = step + 1
        ctx.cur_step_num = ctx.cur_step_num + 1
        self._current_step_num = (ctx.cur_step_num - 1) % per_epoch + 1
        ctx.step_in_epoch = step
        ctx.batch_size = x:size(1)
        ctx.train_dataset_element = { x, y }
        call(list, "on_train_step_begin", ctx)
        local l = self:_train_step(x, y, ctx)
        ctx.net_outputs, ctx.loss = l, l
        call(list, "on_train_step_end", ctx)
        if ctx._stop or step >= per_epoch then break end
      end
      if valid and valid.dataset and should_eval(epoch, valid.frequency) then
        -- MindSpore's _eval_during_train: the counters and outputs of training come back after
        local saved = { ctx.cur_step_num, ctx.batch_num, ctx.net_outputs, ctx._stop }
        ctx._stop = nil
        self:_eval_process(valid.dataset, eval_callbacks(list), ctx, nil, true)
        ctx.mode = "train"
        ctx.cur_step_num, ctx.batch_num, ctx.net_outputs, ctx._stop = saved[1], saved[2], saved[3], saved[4]
        ctx.dataset_sink_mode = false
        if net.train then net:train() end
      end
      call(list, "on_train_epoch_end", ctx)
      ctx.metrics, ctx.eval_results = nil, nil
      if ctx._stop then break end
    end
    -- once at the end, everything the training state holds (BatchNorm statistics, frozen
    -- parameters, optimizer state), before the callbacks save it
    if not allow then check_params(ctx, net, opt, true) end
    call(list, "on_train_end", ctx)
  end)
  if not ok then
    -- MindSpore's _save_final_ckpt: a ModelCheckpoint with exception_save writes a
    -- "_breakpoint" checkpoint of the state training failed in, then the error goes on
    for _, cb in ipairs(user) do
      if type(cb) == "table" and cb.config and cb.config.exception_save and type(cb._exception_save) == "function" then
        local sok, serr = pcall(cb._exception_save, cb, self, ctx)
        if not sok then err = tostring(err) .. " (and the exception_save checkpoint failed: " .. tostring(serr) .. ")" end
      end
    end
    error(err, 0)
  end
  return ctx
end

--- Train for epoch epochs in all (counted from 1; with initial_epoch = k, epochs k+1..epoch run).
-- opts: callbacks (one or a list), initial_epoch (0), dataset_sink_mode (spore never sinks, as
-- MindSpore on CPU), sink_size (-1 only), and spore's own: steps (per-epoch cap), progress
-- (nil: a progress bar when stdout is a terminal; false: never; true: always),
-- allow_nonfinite (false: a NaN/Inf loss or parameter stops training with an error naming
-- the step and the parameter; true: train on, and ModelCheckpoint saves such weights).
-- Returns ctx (MindSpore's cb_params: cur_epoch_num, cur_step_num, net_outputs = the last loss, ...).
function Model:train(epoch, dataset, opts)
  opts = optcheck.check("Model:train", opts, TRAIN_KEYS, nil, RUN_TYPES)
  return self:_train("Model:train", epoch, dataset, opts, nil)
end

--- Train with evaluation (MindSpore's Model.fit): after each epoch whose number is a
-- multiple of valid_frequency (or is in the list valid_frequency), valid_dataset is
-- evaluated; the callbacks' ctx then holds metrics and eval_results (metrics + eval_loss) at
-- on_train_epoch_end (EarlyStopping, ReduceLROnPlateau and History read them).
function Model:fit(epoch, train_dataset, valid_dataset, opts)
  if opts == nil and type(valid_dataset) == "table" and type(valid_dataset.batches) ~= "function" then
    opts, valid_dataset = valid_dataset, nil
  end
  opts = optcheck.check("Model:fit", opts, FIT_KEYS, nil, RUN_TYPES)
  local freq = opts.valid_frequency or 1
  if type(freq) == "number" and freq < 1 then error("Model:fit: valid_frequency must be positive, got " .. freq, 2) end
  if valid_dataset ~= nil then
    check_dataset("Model:fit", valid_dataset, "valid_dataset")
    if not next(Metrics.resolve(self.metrics, 2)) then
      error("Model:fit: with a valid_dataset, the model argument 'metrics' can not be empty", 2)
    end
  end
  return self:_train("Model:fit", epoch, train_dataset, opts, { dataset = valid_dataset, frequency = freq })
end

--- Logits for one batch, computed in eval mode (mode restored), on the net's device (x
-- moves there first). The result may be the net's reused output buffer: clone it to keep
-- it past the next forward.
function Model:predict(x, opts)
  optcheck.check("Model:predict", opts, {}, { backend = "spore predicts with its own engine", config = "spore predicts with its own engine" })
  if not T.is_tensor(x) then error("Model:predict: x must be a Tensor, got " .. type(x), 2) end
  local net = self.network
  x = on(device_of(net), x)
  return in_eval(net, function() return net:forward(x) end)
end

return Model
