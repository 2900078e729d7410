--- spore.optim.Adam(params, learning_rate=1e-3, {beta1=0.9, beta2=0.999, eps=1e-8,
-- weight_decay=0, use_nesterov=false, loss_scale=1}) — MindSpore's Adam: beta*_power start
-- at 1 and are multiplied by beta* before each update; m += (g'-m)(1-b1), v += (g'²-v)(1-b2),
-- p -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps). State (MindSpore 2.x order): global_step,
-- learning_rate, beta1_power, beta2_power, moment1.<p>, moment2.<p>.
local O = require("spore.optim.optimizer")
local K = require("ffi.nn")

local Adam = O.class("Adam")

local function new(params, learning_rate, opts)
  opts = opts or {}
  local self = setmetatable({}, Adam)
  learning_rate = learning_rate or 1e-3
  self:_init_common(params, learning_rate, opts)
  self.beta1, self.beta2, self.eps = opts.beta1 or 0.9, opts.beta2 or 0.999, opts.eps or 1e-8
  if not (self.beta1 >= 0 and self.beta1 < 1 and self.beta2 >= 0 and self.beta2 < 1) then
    error("Adam: beta1 and beta2 must be in [0, 1)", 2)
  end
  if self.eps <= 0 then error("Adam: eps must be > 0", 2) end
  self.use_nesterov = opts.use_nesterov and true or false
  self.global_step_param = self:_add_state("global_step", self:_global_step_param())
  self:_add_lr_state()
  self.beta1_power = self:_add_state("beta1_power", O.scalar(1, "beta1_power"))
  self.beta2_power = self:_add_state("beta2_power", O.scalar(1, "beta2_power"))
  self.moment1 = self:_slots("moment1")
  self.moment2 = self:_slots("moment2")
  return self
end

function Adam:step()
  local lrs = self:_begin_step()
  local b1p = self.beta1_power.data:ptr()
  local b2p = self.beta2_power.data:ptr()
  b1p[0] = b1p[0] * self.beta1
  b2p[0] = b2p[0] * self.beta2
  local p1, p2 = tonumber(b1p[0]), tonumber(b2p[0])
  for i, p in ipairs(self.params) do
    if self:active(p) then
      local gi = self:group_index(p)
      K.adam_update(p.data, self.moment1[i].data, self.moment2[i].data, p.grad, lrs[gi], self.beta1, self.beta2,
        self.eps, p1, p2, self:decay_of(p), self.loss_scale, self.use_nesterov)
    end
  end
end

return new
