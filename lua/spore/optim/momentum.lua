--- spore.optim.Momentum(params, learning_rate, momentum, {weight_decay=0, use_nesterov=false,
-- loss_scale=1}) — MindSpore's Momentum (ApplyMomentum): g' = g/loss_scale + wd*p,
-- v = u*v + g', p -= lr*v (Nesterov: p -= lr*g' + lr*u*v).
-- State, in order: learning_rate, momentum, moments.<param>, global_step.
local O = require("spore.optim.optimizer")
local K = require("ffi.nn")

local Momentum = O.class("Momentum")

local function new(params, learning_rate, momentum, opts)
  if type(learning_rate) == "table" and getmetatable(learning_rate) == nil and learning_rate.learning_rate then
    opts = learning_rate
    learning_rate, momentum = opts.learning_rate, opts.momentum
  end
  opts = opts or {}
  if momentum == nil then error("Momentum: momentum is required", 2) end
  if momentum < 0 then error("Momentum: momentum must be >= 0, got " .. momentum, 2) end
  local self = setmetatable({}, Momentum)
  self:_init_common(params, learning_rate, opts)
  self.use_nesterov = opts.use_nesterov and true or false
  self:_add_lr_state()
  self.momentum_param = self:_add_state("momentum", O.scalar(momentum, "momentum"))
  self.moments = self:_slots("moments")
  self.global_step_param = self:_add_state("global_step", self:_global_step_param())
  return self
end

--- One update of every trainable parameter with a gradient; increments global_step.
function Momentum:step()
  local lrs = self:_begin_step()
  local u = tonumber(self.momentum_param.data:ptr()[0])
  for i, p in ipairs(self.params) do
    if self:active(p) then
      local gi = self:group_index(p)
      K.momentum_update(p.data, self.moments[i].data, p.grad, lrs[gi], u, self:decay_of(p), self.loss_scale,
        self.use_nesterov)
    end
  end
end

return new
