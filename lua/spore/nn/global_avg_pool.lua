--- spore.nn.GlobalAvgPool(): mean over H and W, [N,C,H,W] → [N,C] (MindSpore ResNet's mean + flatten).
local base = require("spore.nn.module")
local K = require("ffi.nn")

local GAP = base.class("GlobalAvgPool")
function GAP:forward(x)
  local s = x:shape()
  local out = self:buffer("output", { s[1], s[2] }, nil, x:device())
  K.global_avgpool_forward(out, x)
  return out
end
function GAP:backward(x, gout)
  local gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x))
  K.global_avgpool_backward(gx, gout)
  return gx
end

return GAP
