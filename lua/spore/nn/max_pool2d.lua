--- spore.nn.MaxPool2d(kernel_size=1, stride=1, pad_mode="valid") as MindSpore; also
-- MaxPool2d{kernel_size=, stride=, pad_mode=, padding=} (nn/pool_common.lua): max over each window;
-- padded cells never win.
local base = require("spore.nn.module")
local P = require("spore.nn.pool_common")
local K = require("ffi.nn")

local MaxPool2d = base.class("MaxPool2d")
MaxPool2d.__init = P.init
function MaxPool2d:__repr() return ("MaxPool2d(%d, stride=%d, pad_mode=%s)"):format(self.kernel_size[1], self.stride[1], self.pad_mode) end
-- a channels-last x (from spore.nn.chain) gives a channels-last output; the pool runs NHWC
function MaxPool2d:forward(x)
  local s = P.input_shape(self, x)
  local ho, wo, p = P.geometry(self, s[3], s[4])
  local os = { s[1], s[2], ho, wo }
  -- (a bfloat16 x, O2 inference from spore.nn.chain, gives a bfloat16 output: the same values)
  local out = self:buffer("output", os, x:dtype(), x:device(), base.channels_last(x) or x:dtype() == "bfloat16")
  local am = self:buffer("argmax", os, "int32", x:device())
  K.maxpool_forward(out, am, x, self.kernel_size, self.stride, p)
  return out
end
function MaxPool2d:backward(x, gout)
  local gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x))
  K.maxpool_backward(gx, gout, self.argmax)
  return gx
end

return MaxPool2d
