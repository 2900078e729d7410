--- spore.nn.initializer — MindSpore's initializers, drawn from spore's seeded
-- generator (spore.manual_seed). A spec is a table from Normal/HeUniform/... , a
-- name ("normal", "he_uniform", "uniform", "truncated_normal", "zeros", "ones"), a
-- number (constant) or a Tensor (copied).
local T = require("spore.tensor")

local I = {}
local opts_check = require("spore.opts").check
-- Each initializer takes MindSpore's arguments in order, or one table with their names
-- (Normal{sigma = 0.02}); a misspelt name is an error, never a silent default.
local function named(where, a, names)
  if type(a) ~= "table" then return nil end
  local types = {}
  for _, k in ipairs(names) do types[k] = (k == "mode" or k == "nonlinearity") and "string" or "number" end
  local o = opts_check(where, a, names, nil, types, 4)
  local out = {}
  for i, k in ipairs(names) do out[i] = o[k] end
  return unpack(out, 1, #names)
end
--- Normal(sigma=0.01, mean=0)
function I.Normal(sigma, mean)
  if type(sigma) == "table" then sigma, mean = named("Normal", sigma, { "sigma", "mean" }) end
  return { kind = "normal", sigma = sigma or 0.01, mean = mean or 0 }
end
--- TruncatedNormal(sigma=0.01): values within 2 sigma
function I.TruncatedNormal(sigma)
  if type(sigma) == "table" then sigma = named("TruncatedNormal", sigma, { "sigma" }) end
  return { kind = "trunc_normal", sigma = sigma or 0.01 }
end
--- Uniform(scale=0.07): U(-scale, scale)
function I.Uniform(scale)
  if type(scale) == "table" then scale = named("Uniform", scale, { "scale" }) end
  return { kind = "uniform", scale = scale or 0.07 }
end
--- HeUniform(negative_slope=sqrt(5), mode="fan_in", nonlinearity="leaky_relu")
function I.HeUniform(negative_slope, mode, nonlinearity)
  if type(negative_slope) == "table" then
    negative_slope, mode, nonlinearity = named("HeUniform", negative_slope, { "negative_slope", "mode", "nonlinearity" })
  end
  return { kind = "he_uniform", a = negative_slope or math.sqrt(5), mode = mode or "fan_in",
           nonlinearity = nonlinearity or "leaky_relu" }
end
--- HeNormal(negative_slope=0, mode="fan_in", nonlinearity="leaky_relu")
function I.HeNormal(negative_slope, mode, nonlinearity)
  if type(negative_slope) == "table" then
    negative_slope, mode, nonlinearity = named("HeNormal", negative_slope, { "negative_slope", "mode", "nonlinearity" })
  end
  return { kind = "he_normal", a = negative_slope or 0, mode = mode or "fan_in", nonlinearity = nonlinearity or "leaky_relu" }
end
function I.Zero() return { kind = "const", value = 0 } end
function I.One() return { kind = "const", value = 1 } end
function I.Constant(v) return { kind = "const", value = v } end

local NAMED = {
  normal = I.Normal, uniform = I.Uniform, he_uniform = I.HeUniform, heuniform = I.HeUniform,
  he_normal = I.HeNormal, henormal = I.HeNormal, truncated_normal = I.TruncatedNormal,
  truncatednormal = I.TruncatedNormal, zeros = I.Zero, zero = I.Zero, ones = I.One, one = I.One,
}

local function fans(shape)
  if #shape < 2 then return shape[1] or 1, shape[1] or 1 end
  local rf = 1
  for i = 3, #shape do rf = rf * shape[i] end
  return shape[2] * rf, shape[1] * rf
end

local function gain(nl, a)
  if nl == "relu" then return math.sqrt(2) end
  if nl == "leaky_relu" then return math.sqrt(2 / (1 + a * a)) end
  if nl == "tanh" then return 5 / 3 end
  return 1
end

--- A new float32 Tensor of `shape` initialised by `spec`.
function I.initialize(spec, shape, dtype)
  if type(spec) == "string" then
    local f = NAMED[spec:lower()]
    if not f then error("unknown initializer '" .. spec .. "'", 2) end
    spec = f()
  elseif type(spec) == "number" then
    spec = I.Constant(spec)
  elseif type(spec) == "table" and getmetatable(spec) == T.Tensor then
    local t = T.empty(shape, dtype)
    t:copy_(spec)
    return t
  end
  local t = T.empty(shape, dtype)
  local k = spec.kind
  if k == "const" then t:fill_(spec.value)
  elseif k == "normal" then t:normal_(spec.mean, spec.sigma)
  elseif k == "trunc_normal" then
    t:trunc_normal_(0, spec.sigma)
  elseif k == "uniform" then t:uniform_(-spec.scale, spec.scale)
  elseif k == "he_uniform" or k == "he_normal" then
    local fi, fo = fans(shape)
    local fan = spec.mode == "fan_out" and fo or fi
    local std = gain(spec.nonlinearity, spec.a) / math.sqrt(fan)
    if k == "he_uniform" then local b = math.sqrt(3) * std; t:uniform_(-b, b) else t:normal_(0, std) end
  else error("unknown initializer kind " .. tostring(k), 2) end
  return t
end
I.fans = fans
return I
