--- spore.nn.Conv2d(in, out, kernel_size, stride=1, pad_mode="same", padding=0, dilation=1,
-- group=1, has_bias=false, weight_init="he_uniform", bias_init=U(±1/sqrt(fan_in)))
-- or Conv2d(in, out, kernel_size, {stride=, pad_mode=, padding=, dilation=, group=, has_bias=,
-- weight_init=, bias_init=}). NCHW; weight [out, in/group, kh, kw]. pad_mode "same" puts
-- the odd pixel at the bottom/right (MindSpore/TF); "pad" takes padding as a number or
-- {top, bottom, left, right}.
local base = require("spore.nn.module")
local I = require("spore.nn.initializer")
local K = require("ffi.nn")

local opts = require("spore.opts")

local Conv2d = base.class("Conv2d")
local KNOWN = { "stride", "pad_mode", "padding", "dilation", "group", "has_bias", "weight_init", "bias_init",
  "data_format", "dtype" }
local TYPES = { stride = { "number", "table" }, pad_mode = "string", padding = { "number", "table" },
  dilation = { "number", "table" }, group = "integer", has_bias = "boolean" }
local DEFAULTS_ONLY = { data_format = { "NCHW", "tensors are NCHW" },
  dtype = { "float32", "weights are float32 (bfloat16 compute: Model amp_level \"O2\")" } }

local function positive_int(what, name, v)
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    error(("%s: %s must be a positive integer, got %s"):format(what, name, tostring(v)), 4)
  end
end

local function pair(v) if type(v) == "table" then return { v[1], v[2] or v[1] } end return { v, v } end

function Conv2d:__init(cin, cout, kernel_size, stride, pad_mode, padding, dilation, group, has_bias, weight_init, bias_init)
  local o = opts.is_options(stride) and stride or nil
  if o then
    if pad_mode ~= nil or padding ~= nil or dilation ~= nil or group ~= nil or has_bias ~= nil or weight_init ~= nil
        or bias_init ~= nil then
      error("Conv2d: arguments after the options table; give them by name in it", 3)
    end
    opts.check("Conv2d", o, KNOWN, nil, TYPES, 4)
    opts.defaults_only("Conv2d", o, DEFAULTS_ONLY, 4)
    stride, pad_mode, padding, dilation, group = o.stride, o.pad_mode, o.padding, o.dilation, o.group
    has_bias, weight_init, bias_init = o.has_bias, o.weight_init, o.bias_init
  end
  positive_int("Conv2d", "in_channels", cin)
  positive_int("Conv2d", "out_channels", cout)
  if type(kernel_size) ~= "number" and type(kernel_size) ~= "table" then
    error("Conv2d: kernel_size must be a number or {kh, kw}, got " .. type(kernel_size), 3)
  end
  self.in_channels, self.out_channels = cin, cout
  self.kernel_size = pair(kernel_size)
  self.stride = pair(stride or 1)
  self.dilation = pair(dilation or 1)
  self.pad_mode = pad_mode or "same"
  if self.pad_mode ~= "same" and self.pad_mode ~= "valid" and self.pad_mode ~= "pad" then
    error("Conv2d: pad_mode must be 'same', 'valid' or 'pad', got '" .. tostring(self.pad_mode) .. "'", 3)
  end
  padding = padding or 0
  if type(padding) == "number" then padding = { padding, padding, padding, padding } end
  if self.pad_mode ~= "pad" and (padding[1] ~= 0 or padding[2] ~= 0 or padding[3] ~= 0 or padding[4] ~= 0) then
    error("Conv2d: padding must be 0 unless pad_mode is 'pad'", 3)
  end
  self.padding = padding
  self.group = group or 1
  if cin % self.group ~= 0 or cout % self.group ~= 0 then
    error(("Conv2d: in_channels %d and out_channels %d must be divisible by group %d"):format(cin, cout, self.group), 3)
  end
  self.has_bias = has_bias and true or false
  -- the engine's geometry rules (kernel, stride, dilation >= 1, padding >= 0) checked now,
  -- on an input large enough for any kernel, so a bad layer fails where it is built
  K.conv2d_geometry(1e9, 1e9, self.kernel_size, self.stride, self.dilation, self.pad_mode, self.padding, self)
  local wshape = { cout, cin / self.group, self.kernel_size[1], self.kernel_size[2] }
  self:register_parameter("weight", base.Parameter(I.initialize(weight_init or "he_uniform", wshape), "weight", true))
  if self.has_bias then
    local fan_in = wshape[2] * wshape[3] * wshape[4]
    self:register_parameter("bias", base.Parameter(I.initialize(bias_init or I.Uniform(1 / math.sqrt(fan_in)), { cout }),
      "bias", true))
  end
end

function Conv2d:__repr()
  return ("Conv2d(%d, %d, kernel_size=%dx%d, stride=%d, pad_mode=%s%s)"):format(self.in_channels, self.out_channels,
    self.kernel_size[1], self.kernel_size[2], self.stride[1], self.pad_mode, self.has_bias and ", has_bias" or "")
end

--- Output size and padding for an input of H×W, from the engine (sp_conv2d_geometry holds
-- MindSpore's pad_mode rules): returns Ho, Wo, {top, bottom, left, right}. Errors name the layer.
function Conv2d:geometry(H, W)
  return K.conv2d_geometry(H, W, self.kernel_size, self.stride, self.dilation, self.pad_mode, self.padding, self)
end

--- {top, bottom, left, right} for an input of H×W.
function Conv2d:pads(H, W)
  local _, _, p = self:geometry(H, W)
  return p
end

-- cl_out: from spore.nn.chain only (its reader takes a channels-last output)
function Conv2d:forward(x, cl_out)
  if type(x) ~= "table" or not x.shape then error("Conv2d: expected an input Tensor, got " .. type(x), 2) end
  local s = x:shape()
  if #s ~= 4 then error("Conv2d: expected a 4-D NCHW input, got " .. #s .. "-D", 2) end
  local ho, wo, p = self:geometry(s[3], s[4])
  local out = self:buffer("output", { s[1], self.out_channels, ho, wo }, nil, x:device(), cl_out == true)
  -- self._bf16: bfloat16 compute (Model amp_level "O2", spore.train.amp)
  ;(self._bf16 and K.conv2d_forward_bf16 or K.conv2d_forward)(out, x, self.weight.data, self.has_bias and self.bias.data or nil, self.stride, p, self.dilation,
    self.group)
  self._pad = p
  return out
end

--- Eval-mode fusion (spore.nn.chain): this conv, then `bn` with its moving statistics,
-- then + residual (optional), then ReLU when relu is true, in one kernel, into
-- owner's "output" buffer (the module whose output the chain hands on), laid out
-- channels-last when channels_last is true, in bfloat16 when bf16_out is true too (an O2
-- conv in inference whose reader takes it: spore.nn.chain).
function Conv2d:_forward_bn(x, bn, residual, relu, owner, channels_last, bf16_out)
  local s = x:shape()
  local ho, wo, p = self:geometry(s[3], s[4])
  local out = owner:buffer("output", { s[1], self.out_channels, ho, wo }, bf16_out and "bfloat16" or "float32",
    x:device(), channels_last)
  ;(self._bf16 and K.conv2d_bn_forward_bf16 or K.conv2d_bn_forward)(out, x, self.weight.data,
    self.has_bias and self.bias.data or nil, bn.gamma.data, bn.beta.data, bn.moving_mean.data,
    bn.moving_variance.data, bn.eps, residual, relu, self.stride, p, self.dilation, self.group)
  self._pad = p
  return out
end

--- true when x's device runs this layer on channels-last operands in place (oneDNN; not a
-- LeNet-sized layer that spore's direct kernels keep): spore.nn.chain asks before making its
-- output channels-last. Remembered per input size.
function Conv2d:_cl_native(x)
  local s = x:shape()
  local m = rawget(self, "_cl_memo")
  if m and m[1] == s[2] and m[2] == s[3] and m[3] == s[4] then return m[4] end
  local _, _, p = self:geometry(s[3], s[4])
  local v = K.conv2d_channels_last_native(x, self.weight.data, self.stride, p, self.dilation, self.group)
  rawset(self, "_cl_memo", { s[2], s[3], s[4], v })
  return v
end

function Conv2d:backward(x, gout, need_input_grad)
  local gx
  if need_input_grad ~= false then gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x)) end
  local gw = self:grad_of(self.weight)
  local gb = self.has_bias and self:grad_of(self.bias) or nil
  if gx or gw or gb then
    local s = x:shape()
    ;(self._bf16 and K.conv2d_backward_bf16 or K.conv2d_backward)(gx, gw, gb, gout, x, self.weight.data, self.stride, self:pads(s[3], s[4]), self.dilation, self.group)
  end
  return gx
end

return Conv2d
