--- spore.optim.SGD(params, learning_rate=0.1, {momentum=0, dampening=0, weight_decay=0,
-- nesterov=false, loss_scale=1}) — MindSpore's SGD: the first step sets accum = g', later
-- accum = u*accum + (1-dampening)*g'; p -= lr*accum (Nesterov: lr*(g' + u*accum)); without
-- momentum p -= lr*g'. State (MindSpore's order): global_step, learning_rate, (the
-- parameters), momentum, accum.<p>, stat.<p>.
-- A parameter's first step is read from the first element of its stat (1 until updated).
local Optimizer = require("spore.optim.optimizer")
local K = require("ffi.nn")

local SGD = Optimizer.class("SGD")

-- MindSpore: SGD(params, learning_rate=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
-- loss_scale=1.0)
local OPTS = { momentum = true, dampening = true, weight_decay = true, nesterov = true, loss_scale = true }
local TYPES = { momentum = "number", dampening = "number", weight_decay = { "number", "function", "table" },
  nesterov = "boolean", loss_scale = "number" }

--- SGD.new(params, learning_rate, opts) → optimizer (see the file header).
function SGD.new(params, learning_rate, opts)
  opts = Optimizer.check_options("SGD", opts, OPTS, nil, TYPES)
  local self = setmetatable({}, SGD)
  self:_init_common(params, learning_rate or 0.1, opts)
  self.nesterov = opts.nesterov and true or false
  self.dampening = opts.dampening or 0
  if self.dampening < 0 then error("SGD: dampening must be >= 0, got " .. self.dampening, 2) end
  for _, b in ipairs(self.buckets) do
    if type(b.decay) ~= "number" then
      error("SGD: dynamic weight decay is not supported (as in MindSpore): weight_decay must be a number", 2)
    end
  end
  local u = opts.momentum or 0
  if u < 0 then error("SGD: momentum must be >= 0", 2) end
  if self.nesterov and (u <= 0 or self.dampening ~= 0) then
    error("SGD: nesterov needs momentum > 0 and dampening 0", 2)
  end
  self.momentum_param = self:_add_state("momentum", Optimizer.scalar(u, "momentum", self.device))
  self.accum = self:_slots("accum")
  self.stat = self:_slots("stat", 1)
  return self
end

function SGD:step()
  local lrs = self:_begin_step()
  local u = self.momentum_param.data:item()
  local damp, ls, nesterov = self.dampening, self.loss_scale, self.nesterov
  self:for_runs(function(b, _, i, j)
    -- split the run where the parameters' first-step flags change
    local k = i
    while k <= j do
      local first = b:slot_first("stat", k) > 0
      local e = k
      while e < j and (b:slot_first("stat", e + 1) > 0) == first do e = e + 1 end
      local t = b:range(k, e)
      K.sgd_update(t.param, t.accum, t.grad, lrs[b.group], u, damp, b.decay_now, ls, nesterov, first)
      if first then t.stat:fill_(0) end
      k = e + 1
    end
  end)
end

return SGD
