--- spore.optim.Momentum(params, learning_rate, momentum, {weight_decay=0, use_nesterov=false,
-- loss_scale=1}) — MindSpore's Momentum (ApplyMomentum): g' = g/loss_scale + wd*p,
-- v = u*v + g', p -= lr*v (Nesterov: p -= lr*g' + lr*u*v).
-- State, in MindSpore's order: global_step, learning_rate, (the parameters), momentum,
-- moments.<param> (learning rates that are arrays or schedules last).
-- Also Momentum(params, {learning_rate=, momentum=, ...}) and Momentum.new(...).
local Optimizer = require("spore.optim.optimizer")
local K = require("ffi.nn")

local Momentum = Optimizer.class("Momentum")

-- MindSpore: Momentum(params, learning_rate, momentum, weight_decay=0.0, loss_scale=1.0, use_nesterov=False)
local OPTS = { weight_decay = true, use_nesterov = true, loss_scale = true, learning_rate = true, momentum = true }
local TYPES = { weight_decay = { "number", "function", "table" }, use_nesterov = "boolean", loss_scale = "number",
  momentum = "number" }

--- Momentum.new(params, learning_rate, momentum, opts) → optimizer (see the file header).
function Momentum.new(params, learning_rate, momentum, opts)
  if type(learning_rate) == "table" and getmetatable(learning_rate) == nil and learning_rate.learning_rate then
    opts = learning_rate
    learning_rate, momentum = opts.learning_rate, opts.momentum
  end
  opts = Optimizer.check_options("Momentum", opts, OPTS, nil, TYPES)
  if momentum == nil then error("Momentum: momentum is required", 2) end
  if momentum < 0 then error("Momentum: momentum must be >= 0, got " .. momentum, 2) end
  local self = setmetatable({}, Momentum)
  self:_init_common(params, learning_rate, opts)
  self.use_nesterov = opts.use_nesterov and true or false
  self.momentum_param = self:_add_state("momentum", Optimizer.scalar(momentum, "momentum", self.device))
  self.moments = self:_slots("moments")
  return self
end

--- One update of every trainable parameter with a gradient (one engine call per flat
-- bucket); increments global_step.
function Momentum:step()
  local lrs = self:_begin_step()
  local u = self.momentum_param.data:item()
  local ls, nesterov = self.loss_scale, self.use_nesterov
  self:for_runs(function(b, t)
    K.momentum_update(t.param, t.moments, t.grad, lrs[b.group], u, b.decay_now, ls, nesterov)
  end)
end

return Momentum
