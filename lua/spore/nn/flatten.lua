--- spore.nn.Flatten(): [N, ...] → [N, prod(...)] (a view; cached while the input tensor is the same).
local base = require("spore.nn.module")

local Flatten = base.class("Flatten")
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

return Flatten
