--- spore.nn LearningRateSchedule classes: mindspore.nn's ExponentialDecayLR, NaturalExpDecayLR,
-- InverseDecayLR, CosineDecayLR, PolynomialDecayLR and WarmUpLR, same names, argument order
-- and values. A schedule is called with the global step and returns the learning rate:
--   local sched = spore.nn.ExponentialDecayLR(0.1, 0.9, 4, false)
--   sched(5)                                   --> 0.1 * 0.9 ^ (5 / 4), as a float32 value
--   spore.optim.Momentum(net, sched, 0.9)     -- evaluated at the optimizer's global_step
-- MindSpore evaluates schedules with float32 Tensor ops (Cast, RealDiv, Pow, Sin, ...): each
-- operation here is rounded to float32 the same way, so the values are MindSpore's to the
-- last bit or one (the float32 pow/sin of the host libm).
local class = require("spore.class")
local C = require("spore.nn.dynamic_lr")._checks

local M = {}

-- round a double to the nearest float32 (ties to even); float32 overflow → ±inf
local frexp, ldexp, floor = math.frexp, math.ldexp, math.floor
local function f32(x)
  if x ~= x or x == 0 or x == math.huge or x == -math.huge then return x end
  local a = x < 0 and -x or x
  local m, e = frexp(a) -- a = m * 2^e, 0.5 <= m < 1
  local bits = 24
  if e < -125 then bits = 24 - (-125 - e) end -- subnormal: fewer bits
  if bits < 1 then return 0 * x end
  local s = m * 2 ^ bits
  local r = floor(s + 0.5)
  if r - s == 0.5 and r % 2 == 1 then r = r - 1 end
  local v = ldexp(r, e - bits)
  if v > 3.4028234663852886e38 then v = math.huge end
  return x < 0 and -v or v
end
M.f32 = f32

local function Schedule(name)
  local cls = class(name)
  cls.__lr_schedule = true
  cls.__call = function(self, step)
    if type(step) ~= "number" or step ~= floor(step) or step < 0 then
      error(("%s: global_step must be a non-negative integer, got %s"):format(name, tostring(step)), 2)
    end
    return self:value(step)
  end
  cls.__tostring = function(self) return name .. "(" .. table.concat(self._args, ", ") .. ")" end
  return cls
end

local function args_of(...)
  local r = {}
  for i = 1, select("#", ...) do r[i] = tostring((select(i, ...))) end
  return r
end

local function decay_init(self, name, learning_rate, decay_rate, decay_steps, is_stair)
  C.pos_int(name, "decay_steps", decay_steps)
  C.pos_num(name, "learning_rate", learning_rate)
  C.pos_num(name, "decay_rate", decay_rate)
  self.is_stair = C.opt_bool(name, "is_stair", is_stair)
  self.learning_rate, self.decay_rate, self.decay_steps = learning_rate, decay_rate, decay_steps
end

--- ExponentialDecayLR(learning_rate, decay_rate, decay_steps, is_stair=false):
-- lr * decay_rate ^ p, p = step / decay_steps (floored when is_stair).
M.ExponentialDecayLR = Schedule("ExponentialDecayLR")
function M.ExponentialDecayLR.new(learning_rate, decay_rate, decay_steps, is_stair)
  local self = setmetatable({ _args = args_of(learning_rate, decay_rate, decay_steps, is_stair) }, M.ExponentialDecayLR)
  decay_init(self, "ExponentialDecayLR", learning_rate, decay_rate, decay_steps, is_stair)
  return self
end
function M.ExponentialDecayLR:value(step)
  local p = f32(f32(step) / self.decay_steps)
  if self.is_stair then p = floor(p) end
  return f32(f32(self.learning_rate) * f32(f32(self.decay_rate) ^ p))
end

--- NaturalExpDecayLR(learning_rate, decay_rate, decay_steps, is_stair=false):
-- lr * e ^ (-decay_rate * p), p = step (rounded down to a multiple of decay_steps when is_stair).
M.NaturalExpDecayLR = Schedule("NaturalExpDecayLR")
function M.NaturalExpDecayLR.new(learning_rate, decay_rate, decay_steps, is_stair)
  local self = setmetatable({ _args = args_of(learning_rate, decay_rate, decay_steps, is_stair) }, M.NaturalExpDecayLR)
  decay_init(self, "NaturalExpDecayLR", learning_rate, decay_rate, decay_steps, is_stair)
  return self
end
function M.NaturalExpDecayLR:value(step)
  local p = f32(step)
  if self.is_stair then p = f32(floor(p / self.decay_steps) * self.decay_steps) end
  local x = f32(f32(-self.decay_rate) * p)
  return f32(f32(self.learning_rate) * f32(f32(math.exp(1)) ^ x))
end

--- InverseDecayLR(learning_rate, decay_rate, decay_steps, is_stair=false):
-- lr / (1 + decay_rate * p), p = step / decay_steps (floored when is_stair).
M.InverseDecayLR = Schedule("InverseDecayLR")
function M.InverseDecayLR.new(learning_rate, decay_rate, decay_steps, is_stair)
  local self = setmetatable({ _args = args_of(learning_rate, decay_rate, decay_steps, is_stair) }, M.InverseDecayLR)
  decay_init(self, "InverseDecayLR", learning_rate, decay_rate, decay_steps, is_stair)
  return self
end
function M.InverseDecayLR:value(step)
  local p = f32(f32(step) / self.decay_steps)
  if self.is_stair then p = floor(p) end
  -- MindSpore's CPU division of a scalar by this tensor multiplies by its float32 reciprocal
  return f32(f32(self.learning_rate) * f32(1 / f32(1 + f32(f32(self.decay_rate) * p))))
end

--- CosineDecayLR(min_lr, max_lr, decay_steps):
-- min_lr + 0.5 (max_lr - min_lr)(1 + sin(pi (p / decay_steps + 0.5))), p = min(step, decay_steps).
M.CosineDecayLR = Schedule("CosineDecayLR")
function M.CosineDecayLR.new(min_lr, max_lr, decay_steps)
  local n = "CosineDecayLR"
  C.nonneg_num(n, "min_lr", min_lr)
  C.pos_num(n, "max_lr", max_lr)
  C.pos_int(n, "decay_steps", decay_steps)
  if min_lr >= max_lr then error(("%s: 'max_lr' must be greater than 'min_lr', got %s and %s"):format(n, max_lr, min_lr), 2) end
  return setmetatable({ _args = args_of(min_lr, max_lr, decay_steps), min_lr = min_lr, max_lr = max_lr,
    decay_steps = decay_steps, delta = 0.5 * (max_lr - min_lr) }, M.CosineDecayLR)
end
function M.CosineDecayLR:value(step)
  local p = f32(math.min(step, self.decay_steps))
  local a = f32(f32(math.pi) * f32(f32(p / self.decay_steps) + 0.5))
  return f32(f32(self.min_lr) + f32(f32(self.delta) * f32(1 + f32(math.sin(a)))))
end

--- PolynomialDecayLR(learning_rate, end_learning_rate, decay_steps, power, update_decay_steps=false):
-- (lr - end) * (1 - p) ^ power + end, p = min(step, decay_steps) / decay_steps, or with
-- update_decay_steps p = step / (decay_steps * max(ceil(step / decay_steps), 1)).
M.PolynomialDecayLR = Schedule("PolynomialDecayLR")
function M.PolynomialDecayLR.new(learning_rate, end_learning_rate, decay_steps, power, update_decay_steps)
  local n = "PolynomialDecayLR"
  C.pos_num(n, "learning_rate", learning_rate)
  C.nonneg_num(n, "end_learning_rate", end_learning_rate)
  C.pos_int(n, "decay_steps", decay_steps)
  C.pos_num(n, "power", power)
  return setmetatable({ _args = args_of(learning_rate, end_learning_rate, decay_steps, power, update_decay_steps),
    learning_rate = learning_rate, end_learning_rate = end_learning_rate, decay_steps = decay_steps, power = power,
    update_decay_steps = C.opt_bool(n, "update_decay_steps", update_decay_steps),
    diff = learning_rate - end_learning_rate }, M.PolynomialDecayLR)
end
function M.PolynomialDecayLR:value(step)
  local s = f32(step)
  local d = self.decay_steps
  if self.update_decay_steps then
    d = f32(d * math.max(math.ceil(f32(s / d)), 1))
  else
    s = math.min(s, d)
  end
  local p = f32(s / d)
  return f32(f32(f32(self.diff) * f32(f32(1 - p) ^ f32(self.power))) + f32(self.end_learning_rate))
end

--- WarmUpLR(learning_rate, warmup_steps): lr * min(step, warmup_steps) / warmup_steps.
M.WarmUpLR = Schedule("WarmUpLR")
function M.WarmUpLR.new(learning_rate, warmup_steps)
  local n = "WarmUpLR"
  C.nonneg_num(n, "learning_rate", learning_rate)
  C.pos_int(n, "warmup_steps", warmup_steps)
  return setmetatable({ _args = args_of(learning_rate, warmup_steps), learning_rate = learning_rate,
    warmup_steps = warmup_steps }, M.WarmUpLR)
end
function M.WarmUpLR:value(step)
  local pct = f32(f32(math.min(step, self.warmup_steps)) / self.warmup_steps)
  return f32(f32(self.learning_rate) * pct)
end

--- is_schedule(x) → true for the schedule objects above (callable with the global step).
function M.is_schedule(x) return type(x) == "table" and x.__lr_schedule == true end

return M
