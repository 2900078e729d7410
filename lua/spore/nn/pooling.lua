--- spore.nn.MaxPool2d(kernel_size=1, stride=1, pad_mode="valid") and AvgPool2d(...) as
-- MindSpore; also MaxPool2d{kernel_size=, stride=, pad_mode=}. "same": output ceil(in/stride),
-- odd padding bottom/right; padded cells never win a max and are not counted in a mean.
local base = require("spore.nn.module")
local T = require("spore.tensor")
local K = require("ffi.nn")

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
  self.padding = padding
  -- the engine's rules (kernel, stride >= 1; "pad" padding in [0, kernel)) checked now, on
  -- an input large enough for any kernel, so a bad layer fails where it is built
  K.pool2d_geometry(1e9, 1e9, self.kernel_size, self.stride, self.pad_mode, self.padding, self)
end
-- Output size and padding from the engine (sp_pool2d_geometry holds MindSpore's rules):
-- Ho, Wo, {top, bottom, left, right}. Errors name the layer.
local function geometry(self, H, W)
  return K.pool2d_geometry(H, W, self.kernel_size, self.stride, self.pad_mode, self.padding, self)
end
local function input_shape(self, x)
  local s = x:shape()
  if #s ~= 4 then error(self:__repr() .. ": expected a 4-D NCHW input, got " .. #s .. "-D", 3) end
  return s
end

local MaxPool2d = base.class("MaxPool2d")
M.MaxPool2d = MaxPool2d
MaxPool2d.__init = init
function MaxPool2d:__repr() return ("MaxPool2d(%d, stride=%d, pad_mode=%s)"):format(self.kernel_size[1], self.stride[1], self.pad_mode) end
function MaxPool2d:forward(x)
  local s = input_shape(self, x)
  local ho, wo, p = geometry(self, s[3], s[4])
  local os = { s[1], s[2], ho, wo }
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
  local s = input_shape(self, x)
  local ho, wo, p = geometry(self, s[3], s[4])
  local out = self:buffer("output", { s[1], s[2], ho, wo }, nil, x:device())
  K.avgpool_forward(out, x, self.kernel_size, self.stride, p, false)
  return out
end
function AvgPool2d:backward(x, gout)
  local s = x:shape()
  local gx = self:buffer("grad_input", s, nil, x:device())
  local _, _, p = geometry(self, s[3], s[4])
  K.avgpool_backward(gx, gout, self.kernel_size, self.stride, p, false)
  return gx
end
local _ = T
return M
