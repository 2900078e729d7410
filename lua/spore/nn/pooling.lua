--- spore.nn.MaxPool2d(kernel_size=1, stride=1, pad_mode="valid") and AvgPool2d(...) as
-- MindSpore; also MaxPool2d{kernel_size=, stride=, pad_mode=}. "same": output ceil(in/stride),
-- odd padding bottom/right; padded cells never win a max and are not counted in a mean.
local base = require("spore.nn.module")
local T = require("spore.tensor")
local K = require("ffi.nn")
local Conv2d = require("spore.nn.conv")

local M = {}
local function pair(v) if type(v) == "table" then return { v[1], v[2] or v[1] } end return { v, v } end

-- pad_mode "pad" (spore's addition, for the zoo's nn.Pad + "valid" pool) takes padding =
-- n or {top, bottom, left, right}; padded cells, like "same"'s, never win a max.
local function init(self, kernel_size, stride, pad_mode, padding)
  if type(kernel_size) == "table" and kernel_size.kernel_size then
    local o = kernel_size
    kernel_size, stride, pad_mode, padding = o.kernel_size, o.stride, o.pad_mode, o.padding
  end
  self.kernel_size = pair(kernel_size or 1)
  self.stride = pair(stride or 1)
  self.pad_mode = (pad_mode or "valid"):lower()
  if self.pad_mode ~= "same" and self.pad_mode ~= "valid" and self.pad_mode ~= "pad" then
    error("pooling: pad_mode must be 'same', 'valid' or 'pad', got '" .. self.pad_mode .. "'", 4)
  end
  padding = padding or 0
  if type(padding) == "number" then padding = { padding, padding, padding, padding } end
  if self.pad_mode ~= "pad" and (padding[1] ~= 0 or padding[2] ~= 0 or padding[3] ~= 0 or padding[4] ~= 0) then
    error("pooling: padding must be 0 unless pad_mode is 'pad'", 4)
  end
  for i = 1, 4 do
    local k = self.kernel_size[i <= 2 and 1 or 2]
    if padding[i] < 0 or padding[i] >= k then error("pooling: padding must be in [0, kernel_size)", 4) end
  end
  self.padding = padding
end
local function pads(self, H, W)
  if self.pad_mode == "valid" then return { 0, 0, 0, 0 } end
  if self.pad_mode == "pad" then return self.padding end
  local t, b = Conv2d.same_pad(H, self.kernel_size[1], self.stride[1], 1)
  local l, r = Conv2d.same_pad(W, self.kernel_size[2], self.stride[2], 1)
  return { t, b, l, r }
end
local function out_shape(self, s, p)
  return { s[1], s[2], math.floor((s[3] + p[1] + p[2] - self.kernel_size[1]) / self.stride[1]) + 1,
           math.floor((s[4] + p[3] + p[4] - self.kernel_size[2]) / self.stride[2]) + 1 }
end

local MaxPool2d = base.class("MaxPool2d")
M.MaxPool2d = MaxPool2d
MaxPool2d.__init = init
function MaxPool2d:__repr() return ("MaxPool2d(%d, stride=%d, pad_mode=%s)"):format(self.kernel_size[1], self.stride[1], self.pad_mode) end
function MaxPool2d:forward(x)
  local s = x:shape()
  local p = pads(self, s[3], s[4])
  local os = out_shape(self, s, p)
  local out = self:buffer("output", os, nil, x:device())
  local am = self:buffer("argmax", os, "int32", x:device())
  K.maxpool_forward(out, am, x, self.kernel_size, self.stride, p)
  return out
end
function MaxPool2d:backward(x, gout)
  local gx = self:buffer("grad_input", x:shape(), nil, x:device())
  K.maxpool_backward(gx, gout, self.argmax)
  return gx
end

local AvgPool2d = base.class("AvgPool2d")
M.AvgPool2d = AvgPool2d
AvgPool2d.__init = init
function AvgPool2d:__repr() return ("AvgPool2d(%d, stride=%d, pad_mode=%s)"):format(self.kernel_size[1], self.stride[1], self.pad_mode) end
function AvgPool2d:forward(x)
  local s = x:shape()
  local p = pads(self, s[3], s[4])
  local out = self:buffer("output", out_shape(self, s, p), nil, x:device())
  K.avgpool_forward(out, x, self.kernel_size, self.stride, p, false)
  return out
end
function AvgPool2d:backward(x, gout)
  local s = x:shape()
  local gx = self:buffer("grad_input", s, nil, x:device())
  K.avgpool_backward(gx, gout, self.kernel_size, self.stride, pads(self, s[3], s[4]), false)
  return gx
end
local _ = T
return M
