--- spore.nn activations and shape layers: ReLU(), Dropout(keep_prob=0.5 | {p=}), Flatten(),
-- GlobalAvgPool() (mean over H, W → [N, C]).
local base = require("spore.nn.module")
local T = require("spore.tensor")
local K = require("ffi.nn")

local M = {}

local ReLU = base.class("ReLU")
M.ReLU = ReLU
function ReLU:forward(x)
  local out = self:buffer("output", x:shape(), nil, x:device())
  K.relu_forward(out, x)
  return out
end
function ReLU:backward(_, gout)
  local gx = self:buffer("grad_input", gout:shape(), nil, self.output:device())
  K.relu_backward(gx, gout, self.output)
  return gx
end

--- Dropout(keep_prob=0.5) as MindSpore 1.x, or Dropout{p=0.5} (drop probability) as 2.x.
-- Masks come from spore's seeded generator; identity in eval mode.
local Dropout = base.class("Dropout")
M.Dropout = Dropout
function Dropout:__init(keep_prob)
  if type(keep_prob) == "table" then self.p = keep_prob.p or (1 - (keep_prob.keep_prob or 0.5))
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

--- Flatten: [N, ...] → [N, prod(...)] (a view; cached while the input tensor is the same).
local Flatten = base.class("Flatten")
M.Flatten = Flatten
function Flatten:forward(x)
  local s = x:shape()
  if self._in ~= x or not self.output or not base.same_shape(x, self._in_shape) then
    local n = 1
    for i = 2, #s do n = n * s[i] end
    self._in, self._in_shape = x, s
    self.output = x:view({ s[1], n })
    self.grad_input, self._gin = nil, nil
  end
  return self.output
end
function Flatten:backward(x, gout)
  if self._gin ~= gout or not self.grad_input then
    self._gin = gout
    self.grad_input = gout:view(x:shape())
  end
  return self.grad_input
end

--- GlobalAvgPool: mean over H and W, [N,C,H,W] → [N,C] (MindSpore ResNet's mean + flatten).
local GAP = base.class("GlobalAvgPool")
M.GlobalAvgPool = GAP
function GAP:forward(x)
  local s = x:shape()
  local out = self:buffer("output", { s[1], s[2] }, nil, x:device())
  K.global_avgpool_forward(out, x)
  return out
end
function GAP:backward(x, gout)
  local gx = self:buffer("grad_input", x:shape(), nil, x:device())
  K.global_avgpool_backward(gx, gout)
  return gx
end

return M
