--- spore.optim.AdamWeightDecay(params, learning_rate=1e-3, {beta1=0.9, beta2=0.999, eps=1e-6,
-- weight_decay=0}) — MindSpore's AdamWeightDecay (its fused kernel): no bias correction,
-- and the decay goes into the update (scaled by lr), not into the gradient:
--   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g²;  p -= lr * (m/(eps + sqrt(v)) + wd*p)
-- weight_decay: a number or a function(global_step) → number (MindSpore: a Cell), applied,
-- ungrouped, to every parameter whose name lacks "beta" and "gamma"; in groups, to every
-- parameter of a group whose weight_decay is > 0 (MindSpore's decay flags).
-- State (MindSpore's order): global_step, learning_rate, (the parameters), adam_m.<p>, adam_v.<p>.
-- MindSpore's AdamWeightDecay has no loss_scale and never centralizes gradients: a group
-- with grad_centralization is refused (MindSpore accepts the key and ignores it).
local Optimizer = require("spore.optim.optimizer")
local K = require("ffi.nn")

local AdamWeightDecay = Optimizer.class("AdamWeightDecay")

local OPTS = { "beta1", "beta2", "eps", "weight_decay" }
local TYPES = { beta1 = "number", beta2 = "number", eps = "number", weight_decay = { "number", "function", "table" } }
local GROUP_REFUSED = { grad_centralization = "MindSpore's AdamWeightDecay accepts it but never centralizes "
  .. "gradients; spore refuses it rather than ignore it" }

--- AdamWeightDecay.new(params, learning_rate, opts) → optimizer (see the file header).
function AdamWeightDecay.new(params, learning_rate, opts)
  opts = require("spore.opts").check("AdamWeightDecay", opts, OPTS, nil, TYPES, 3)
  local self = setmetatable({}, AdamWeightDecay)
  self:_init_common(params, learning_rate or 1e-3, opts, { group_refused = GROUP_REFUSED })
  self.beta1, self.beta2, self.eps = opts.beta1 or 0.9, opts.beta2 or 0.999, opts.eps or 1e-6
  if not (self.beta1 > 0 and self.beta1 < 1 and self.beta2 > 0 and self.beta2 < 1) then
    error("AdamWeightDecay: beta1 and beta2 must be in (0, 1), as in MindSpore", 2)
  end
  if self.eps <= 0 then error("AdamWeightDecay: eps must be > 0", 2) end
  self.moments1 = self:_slots("adam_m")
  self.moments2 = self:_slots("adam_v")
  return self
end

function AdamWeightDecay:step()
  local lrs = self:_begin_step()
  local b1, b2, eps = self.beta1, self.beta2, self.eps
  self:for_runs(function(b, t)
    K.adamw_update(t.param, t.adam_m, t.adam_v, t.grad, lrs[b.group], b1, b2, eps, b.decay_now)
  end)
end

return AdamWeightDecay
