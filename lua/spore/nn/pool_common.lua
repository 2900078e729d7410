--- spore.nn.pool_common — what MaxPool2d and AvgPool2d share: the constructor (their
-- __init: kernel_size, stride, pad_mode, padding, checked by the engine's geometry rules),
-- the output geometry and the input check.
local K = require("ffi.nn")

local M = {}
local function pair(v) if type(v) == "table" then return { v[1], v[2] or v[1] } end return { v, v } end

-- pad_mode "pad" (spore's addition, for the zoo's nn.Pad + "valid" pool) takes padding =
-- n or {top, bottom, left, right}; padded cells, like "same"'s, never win a max.
local opts = require("spore.opts")
-- MindSpore's keys: accepted (KNOWN), accepted at MindSpore's default only (DEFAULTS),
-- refused by name (REFUSED).
local KNOWN = {
  MaxPool2d = { "kernel_size", "stride", "pad_mode", "padding", "data_format", "dilation", "return_indices",
    "ceil_mode" },
  AvgPool2d = { "kernel_size", "stride", "pad_mode", "padding", "data_format", "ceil_mode", "count_include_pad" },
}
local DEFAULTS = {
  MaxPool2d = { data_format = { "NCHW", "tensors are NCHW" }, dilation = { 1, "no dilated pooling" },
    return_indices = { false, "no indices output" }, ceil_mode = { false, "output sizes round down" } },
  AvgPool2d = { data_format = { "NCHW", "tensors are NCHW" }, ceil_mode = { false, "output sizes round down" } },
}
local REFUSED = { AvgPool2d = { divisor_override = "the divisor is the window size (or its part inside the input)" } }
local TYPES = { kernel_size = { "number", "table" }, stride = { "number", "table" }, pad_mode = "string",
  padding = { "number", "table" }, count_include_pad = "boolean" }
function M.init(self, kernel_size, stride, pad_mode, padding)
  if opts.is_options(kernel_size) then
    local where = getmetatable(self).__name
    if stride ~= nil or pad_mode ~= nil or padding ~= nil then
      error(where .. ": arguments after the options table; give them by name in it", 3)
    end
    local o = opts.check(where, kernel_size, KNOWN[where], REFUSED[where], TYPES, 4)
    opts.defaults_only(where, o, DEFAULTS[where], 4)
    -- MindSpore's default: with pad_mode "pad", the zero padding counts in a mean
    if o.count_include_pad ~= nil then self.count_include_pad = o.count_include_pad end
    kernel_size, stride, pad_mode, padding = o.kernel_size, o.stride, o.pad_mode, o.padding
  end
  self.kernel_size = pair(kernel_size or 1)
  self.stride = pair(stride or 1)
  self.pad_mode = (pad_mode or "valid"):lower()
  if self.pad_mode ~= "same" and self.pad_mode ~= "valid" and self.pad_mode ~= "pad" then
    error(getmetatable(self).__name .. ": pad_mode must be 'same', 'valid' or 'pad', got '" .. self.pad_mode .. "'", 3)
  end
  padding = padding or 0
  if type(padding) == "number" then padding = { padding, padding, padding, padding } end
  if self.pad_mode ~= "pad" and (padding[1] ~= 0 or padding[2] ~= 0 or padding[3] ~= 0 or padding[4] ~= 0) then
    error(getmetatable(self).__name .. ": padding must be 0 unless pad_mode is 'pad'", 3)
  end
  self.padding = padding
  -- the engine's rules (kernel, stride >= 1; "pad" padding in [0, kernel)) checked now, on
  -- an input large enough for any kernel, so a bad layer fails where it is built
  K.pool2d_geometry(1e9, 1e9, self.kernel_size, self.stride, self.pad_mode, self.padding, self)
end
-- Output size and padding from the engine (sp_pool2d_geometry holds MindSpore's rules):
-- Ho, Wo, {top, bottom, left, right}. Errors name the layer.
function M.geometry(self, H, W)
  return K.pool2d_geometry(H, W, self.kernel_size, self.stride, self.pad_mode, self.padding, self)
end
function M.input_shape(self, x)
  local s = x:shape()
  if #s ~= 4 then error(self:__repr() .. ": expected a 4-D NCHW input, got " .. #s .. "-D", 3) end
  return s
end

return M
