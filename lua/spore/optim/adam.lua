--- spore.optim.Adam(params, learning_rate=1e-3, {beta1=0.9, beta2=0.999, eps=1e-8,
-- weight_decay=0, use_nesterov=false, loss_scale=1, use_amsgrad=false}) — MindSpore's Adam:
-- beta*_power start at 1 and are multiplied by beta* before each update; g' = g/loss_scale +
-- wd*p; m += (g'-m)(1-b1), v += (g'²-v)(1-b2), p -= lr*sqrt(1-b2^t)/(1-b1^t) *
-- m/(sqrt(v)+eps). use_amsgrad (ApplyAdamWithAmsgradV2): vhat = max(vhat, v) replaces v in
-- the denominator. State (MindSpore 2.x order): global_step, learning_rate, (the parameters),
-- beta1_power, beta2_power, moment1.<p>, moment2.<p>, vhat.<p> (with use_amsgrad).
local Optimizer = require("spore.optim.optimizer")
local K = require("ffi.nn")

local Adam = Optimizer.class("Adam")

local OPTS = { "beta1", "beta2", "eps", "weight_decay", "use_nesterov", "loss_scale", "use_amsgrad" }
local REFUSED = { use_locking = "locking is not implemented (spore updates one parameter at a time)",
  use_lazy = "lazy Adam (sparse rows) is not implemented", use_offload = "Adam offload (host update) is not implemented" }
local TYPES = { beta1 = "number", beta2 = "number", eps = "number", use_nesterov = "boolean", use_amsgrad = "boolean",
  loss_scale = "number", weight_decay = { "number", "function", "table" } }

--- Adam.new(params, learning_rate, opts) → optimizer (see the file header).
function Adam.new(params, learning_rate, opts)
  opts = require("spore.opts").check("Adam", opts, OPTS, REFUSED, TYPES, 3)
  local self = setmetatable({}, Adam)
  learning_rate = learning_rate or 1e-3
  self:_init_common(params, learning_rate, opts)
  self.beta1, self.beta2, self.eps = opts.beta1 or 0.9, opts.beta2 or 0.999, opts.eps or 1e-8
  if not (self.beta1 > 0 and self.beta1 < 1 and self.beta2 > 0 and self.beta2 < 1) then
    error("Adam: beta1 and beta2 must be in (0, 1), as in MindSpore", 2)
  end
  if self.eps <= 0 then error("Adam: eps must be > 0", 2) end
  self.use_nesterov = opts.use_nesterov and true or false
  self.use_amsgrad = opts.use_amsgrad and true or false
  if self.use_amsgrad and self.use_nesterov then
    error("Adam: use_amsgrad with use_nesterov is not implemented (MindSpore's ApplyAdamWithAmsgradV2 has no Nesterov)", 2)
  end
  self.beta1_power = self:_add_state("beta1_power", Optimizer.scalar(1, "beta1_power", self.device))
  self.beta2_power = self:_add_state("beta2_power", Optimizer.scalar(1, "beta2_power", self.device))
  self.moment1 = self:_slots("moment1")
  self.moment2 = self:_slots("moment2")
  if self.use_amsgrad then self.vhat = self:_slots("vhat") end
  return self
end

-- power *= beta as MindSpore does it: float32 power times float32 beta, rounded to float32
-- (the product of two float32 values is exact in a double; the state's fill_ rounds it)
local function advance(power, beta32)
  local t = power.data
  t:fill_(t:item() * beta32)
  return t:item()
end
local function f32(v) return Optimizer.scalar(v, "", "cpu").data:item() end

function Adam:step()
  local lrs = self:_begin_step()
  self._b32 = self._b32 or { f32(self.beta1), f32(self.beta2) }
  local p1 = advance(self.beta1_power, self._b32[1])
  local p2 = advance(self.beta2_power, self._b32[2])
  local b1, b2, eps, ls, nesterov = self.beta1, self.beta2, self.eps, self.loss_scale, self.use_nesterov
  if self.use_amsgrad then
    self:for_runs(function(b, t)
      K.adam_amsgrad_update(t.param, t.moment1, t.moment2, t.vhat, t.grad, lrs[b.group], b1, b2, eps, p1, p2,
        b.decay_now, ls)
    end)
    return
  end
  self:for_runs(function(b, t)
    K.adam_update(t.param, t.moment1, t.moment2, t.grad, lrs[b.group], b1, b2, eps, p1, p2, b.decay_now, ls, nesterov)
  end)
end

return Adam
