--- spore.nn.Dense(in, out, weight_init="he_uniform", bias_init=U(±1/sqrt(in)), has_bias=true)
-- or Dense(in, out, {weight_init=, bias_init=, has_bias=}). weight [out, in]; y = x·Wᵀ + b.
local base = require("spore.nn.module")
local I = require("spore.nn.initializer")
local K = require("ffi.nn")

local opts = require("spore.opts")

local Dense = base.class("Dense")

local function positive_int(what, name, v)
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    error(("%s: %s must be a positive integer, got %s"):format(what, name, tostring(v)), 4)
  end
end

function Dense:__init(cin, cout, weight_init, bias_init, has_bias)
  if opts.is_options(weight_init) then
    if bias_init ~= nil or has_bias ~= nil then
      error("Dense: arguments after the options table; give them by name in it", 3)
    end
    local o = opts.check("Dense", weight_init, { "weight_init", "bias_init", "has_bias", "dtype" },
      { activation = "put the activation after the layer (nn.SequentialCell{nn.Dense(...), nn.ReLU()})" },
      { has_bias = "boolean" }, 4)
    opts.defaults_only("Dense", o, { dtype = { "float32", "weights are float32 (bfloat16 compute: Model amp_level \"O2\")" } }, 4)
    weight_init, bias_init, has_bias = o.weight_init, o.bias_init, o.has_bias
  end
  positive_int("Dense", "in_channels", cin)
  positive_int("Dense", "out_channels", cout)
  if has_bias == nil then has_bias = true end
  self.in_channels, self.out_channels, self.has_bias = cin, cout, has_bias
  self:register_parameter("weight", base.Parameter(I.initialize(weight_init or "he_uniform", { cout, cin }), "weight", true))
  if has_bias then
    self:register_parameter("bias", base.Parameter(I.initialize(bias_init or I.Uniform(1 / math.sqrt(cin)), { cout }),
      "bias", true))
  end
end
function Dense:__repr() return ("Dense(%d, %d%s)"):format(self.in_channels, self.out_channels, self.has_bias and "" or ", no bias") end

function Dense:forward(x)
  if type(x) ~= "table" or not x.shape then error("Dense: expected an input Tensor, got " .. type(x), 2) end
  local s = x:shape()
  if #s ~= 2 or s[2] ~= self.in_channels then
    error(("Dense: expected input [N, %d], got [%s]"):format(self.in_channels, table.concat(s, ", ")), 2)
  end
  local out = self:buffer("output", { s[1], self.out_channels }, nil, x:device())
  -- self._bf16: bfloat16 compute (Model amp_level "O2", spore.train.amp)
  ;(self._bf16 and K.dense_forward_bf16 or K.dense_forward)(out, x, self.weight.data, self.has_bias and self.bias.data or nil)
  return out
end

function Dense:backward(x, gout, need_input_grad)
  local gx
  if need_input_grad ~= false then gx = self:buffer("grad_input", x:shape(), nil, x:device()) end
  local gw = self:grad_of(self.weight)
  local gb = self.has_bias and self:grad_of(self.bias) or nil
  if gx or gw or gb then (self._bf16 and K.dense_backward_bf16 or K.dense_backward)(gx, gw, gb, gout, x, self.weight.data) end
  return gx
end

return Dense
