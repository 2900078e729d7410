--- spore.optim.Adam(params, learning_rate=1e-3, {beta1=0.9, beta2=0.999, eps=1e-8,
-- weight_decay=0, use_nesterov=false, loss_scale=1}) — MindSpore's Adam: beta*_power start
-- at 1 and are multiplied by beta* before each update; m += (g'-m)(1-b1), v += (g'²-v)(1-b2),
-- p -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps). State (MindSpore 2.x order): global_step,
-- learning_rate, beta1_power, beta2_power, moment1.<p>, moment2.<p>.
local Optimizer = require("spore.optim.optimizer")
local K = require("ffi.nn")

local Adam = Optimizer.class("Adam")

local OPTS = { beta1 = true, beta2 = true, eps = true, weight_decay = true, use_nesterov = true, loss_scale = true }
local REFUSED = { use_locking = "locking is not implemented", use_amsgrad = "AMSGrad is not implemented" }

--- Adam.new(params, learning_rate, opts) → optimizer (see the file header).
function Adam.new(params, learning_rate, opts)
  opts = Optimizer.check_options("Adam", opts, OPTS, REFUSED)
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
  self.beta1_power = self:_add_state("beta1_power", Optimizer.scalar(1, "beta1_power", self.device))
  self.beta2_power = self:_add_state("beta2_power", Optimizer.scalar(1, "beta2_power", self.device))
  self.moment1 = self:_slots("moment1")
  self.moment2 = self:_slots("moment2")
  return self
end

-- power *= beta in double, stored as the state's float32 and read back (engine ops)
local function advance(power, beta)
  local t = power.data
  t:fill_(t:item() * beta)
  return t:item()
end

function Adam:step()
  local lrs = self:_begin_step()
  local p1 = advance(self.beta1_power, self.beta1)
  local p2 = advance(self.beta2_power, self.beta2)
  local b1, b2, eps, ls, nesterov = self.beta1, self.beta2, self.eps, self.loss_scale, self.use_nesterov
  self:for_runs(function(b, t)
    K.adam_update(t.param, t.moment1, t.moment2, t.grad, lrs[b.group], b1, b2, eps, p1, p2, b.decay, ls, nesterov)
  end)
end

return Adam
