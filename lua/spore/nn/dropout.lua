--- spore.nn.Dropout(keep_prob=0.5) as MindSpore 1.x, or Dropout{p=0.5} (drop probability) as 2.x.
-- Masks come from spore's seeded generator; identity in eval mode.
local base = require("spore.nn.module")
local K = require("ffi.nn")

local Dropout = base.class("Dropout")
function Dropout:__init(keep_prob)
  if type(keep_prob) == "table" then
    local o = require("spore.opts").check("Dropout", keep_prob, { "keep_prob", "p" },
      { dtype = "masks and outputs are float32" }, { keep_prob = "number", p = "number" }, 4)
    if o.p ~= nil and o.keep_prob ~= nil then
      error("Dropout: give 'p' (MindSpore 2.x, the drop probability) or 'keep_prob' (1.x), not both", 3)
    end
    self.p = o.p or (1 - (o.keep_prob or 0.5))
  else self.p = 1 - (keep_prob or 0.5) end
  if not (self.p >= 0 and self.p < 1) then error("Dropout: drop probability must be in [0, 1)", 3) end
end
function Dropout:__repr() return ("Dropout(p=%g)"):format(self.p) end
function Dropout:forward(x)
  if not self.training or self.p == 0 then self._identity = true; return x end
  self._identity = false
  local out = self:buffer("output", x:shape(), nil, x:device())
  local mask = self:buffer("mask", x:shape(), nil, x:device())
  K.dropout_forward(out, mask, x, self.p)
  return out
end
function Dropout:backward(_, gout)
  if self._identity then return gout end
  local gx = self:buffer("grad_input", gout:shape(), nil, self.mask:device())
  K.mul(gx, gout, self.mask)
  return gx
end

return Dropout
