--- spore.nn.AvgPool2d(kernel_size=1, stride=1, pad_mode="valid") as MindSpore; also
-- AvgPool2d{kernel_size=, stride=, pad_mode=, padding=, count_include_pad=true} (nn/pool_common.lua):
-- mean over each window. With pad_mode "pad" the zero padding counts in the divisor unless
-- count_include_pad = false (MindSpore's default and option); "same" never counts its padding.
local base = require("spore.nn.module")
local P = require("spore.nn.pool_common")
local K = require("ffi.nn")

local AvgPool2d = base.class("AvgPool2d")
AvgPool2d.__init = P.init
AvgPool2d.count_include_pad = true
local function count_pad(self) return self.pad_mode == "pad" and self.count_include_pad end
function AvgPool2d:__repr() return ("AvgPool2d(%d, stride=%d, pad_mode=%s)"):format(self.kernel_size[1], self.stride[1], self.pad_mode) end
function AvgPool2d:forward(x)
  local s = P.input_shape(self, x)
  local ho, wo, p = P.geometry(self, s[3], s[4])
  local out = self:buffer("output", { s[1], s[2], ho, wo }, nil, x:device())
  K.avgpool_forward(out, x, self.kernel_size, self.stride, p, count_pad(self))
  return out
end
function AvgPool2d:backward(x, gout)
  local s = x:shape()
  local gx = self:buffer("grad_input", s, nil, x:device())
  local _, _, p = P.geometry(self, s[3], s[4])
  K.avgpool_backward(gx, gout, self.kernel_size, self.stride, p, count_pad(self))
  return gx
end

return AvgPool2d
