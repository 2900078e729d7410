--- spore.optim.SGD(params, learning_rate=0.1, {momentum=0, dampening=0, weight_decay=0,
-- nesterov=false, loss_scale=1}) — MindSpore's SGD: the first step sets accum = g', later
-- accum = u*accum + (1-dampening)*g'; p -= lr*accum (Nesterov: lr*(g' + u*accum)); without
-- momentum p -= lr*g'. State: learning_rate, momentum, accum.<p>, stat.<p>, global_step.
local O = require("spore.optim.optimizer")
local K = require("ffi.nn")

local SGD = O.class("SGD")

local function new(params, learning_rate, opts)
  opts = opts or {}
  local self = setmetatable({}, SGD)
  self:_init_common(params, learning_rate or 0.1, opts)
  self.nesterov = opts.nesterov and true or false
  self.dampening = opts.dampening or 0
  local u = opts.momentum or 0
  if u < 0 then error("SGD: momentum must be >= 0", 2) end
  if self.nesterov and (u <= 0 or self.dampening ~= 0) then
    error("SGD: nesterov needs momentum > 0 and dampening 0", 2)
  end
  self:_add_lr_state()
  self.momentum_param = self:_add_state("momentum", O.scalar(u, "momentum"))
  self.accum = self:_slots("accum")
  self.stat = self:_slots("stat", 1)
  self.global_step_param = self:_add_state("global_step", self:_global_step_param())
  return self
end

function SGD:step()
  local lrs = self:_begin_step()
  local u = tonumber(self.momentum_param.data:ptr()[0])
  for i, p in ipairs(self.params) do
    if self:active(p) then
      local gi = self:group_index(p)
      local stat = self.stat[i].data
      local first = stat:numel() > 0 and stat:ptr()[0] > 0
      K.sgd_update(p.data, self.accum[i].data, p.grad, lrs[gi], u, self.dampening, self:decay_of(p), self.loss_scale,
        self.nesterov, first)
      if first then stat:fill_(0) end
    end
  end
end

return new
