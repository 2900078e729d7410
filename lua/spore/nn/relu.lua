--- spore.nn.ReLU(): max(x, 0) elementwise.
local base = require("spore.nn.module")
local K = require("ffi.nn")

local ReLU = base.class("ReLU")
function ReLU:forward(x)
  local out = self:buffer("output", x:shape(), nil, x:device(), base.channels_last(x)) -- x's layout
  K.relu_forward(out, x)
  return out
end
function ReLU:backward(_, gout)
  local gx = self:buffer("grad_input", gout:shape(), nil, self.output:device(), base.channels_last(self.output))
  K.relu_backward(gx, gout, self.output)
  return gx
end

return ReLU
