--- spore.nn dynamic learning rates: mindspore.nn's dynamic-lr functions, same names, same
-- argument order, same values (MindSpore computes them in Python floats, so does this file:
-- Lua numbers are the same IEEE doubles, and math.floor/cos/^ the same C functions). Each
-- returns an array of total_step learning rates, to give an optimizer as learning_rate
-- (it reads value global_step at each step; an array that runs out is an error).
--   piecewise_constant_lr(milestone, learning_rates)
--   exponential_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
--   natural_exp_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
--   inverse_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
--   cosine_decay_lr(min_lr, max_lr, total_step, step_per_epoch, decay_epoch)
--   polynomial_decay_lr(learning_rate, end_learning_rate, total_step, step_per_epoch, decay_epoch, power,
--                       update_decay_epoch)
--   warmup_lr(learning_rate, total_step, step_per_epoch, warmup_epoch)
-- Arguments are checked as MindSpore's validator checks them (positive ints, positive or
-- non-negative floats, booleans), with one error naming the function and the argument.
local M = {}

local floor = math.floor

local function fail(fn, msg) error(("%s: %s"):format(fn, msg), 3) end

local function pos_int(fn, name, v)
  if type(v) ~= "number" or v ~= floor(v) or v <= 0 then
    fail(fn, ("'%s' must be a positive integer, got %s"):format(name, tostring(v)))
  end
end
local function pos_num(fn, name, v)
  if type(v) ~= "number" or not (v > 0) then fail(fn, ("'%s' must be a positive number, got %s"):format(name, tostring(v))) end
end
local function nonneg_num(fn, name, v)
  if type(v) ~= "number" or not (v >= 0) then
    fail(fn, ("'%s' must be a non-negative number, got %s"):format(name, tostring(v)))
  end
end
local function opt_bool(fn, name, v)
  if v ~= nil and type(v) ~= "boolean" then fail(fn, ("'%s' must be a boolean, got %s"):format(name, type(v))) end
  return v == true
end
M._checks = { pos_int = pos_int, pos_num = pos_num, nonneg_num = nonneg_num, opt_bool = opt_bool }

local function check_decay(fn, learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  pos_int(fn, "total_step", total_step)
  pos_int(fn, "step_per_epoch", step_per_epoch)
  pos_int(fn, "decay_epoch", decay_epoch)
  pos_num(fn, "learning_rate", learning_rate)
  pos_num(fn, "decay_rate", decay_rate)
  return opt_bool(fn, "is_stair", is_stair)
end

--- piecewise_constant_lr({2, 5, 10}, {0.1, 0.05, 0.01}) → {0.1, 0.1, 0.05 x3, 0.01 x5}
function M.piecewise_constant_lr(milestone, learning_rates)
  local fn = "piecewise_constant_lr"
  if type(milestone) ~= "table" then fail(fn, "'milestone' must be an array of step counts, got " .. type(milestone)) end
  if type(learning_rates) ~= "table" then fail(fn, "'learning_rates' must be an array, got " .. type(learning_rates)) end
  if #milestone ~= #learning_rates then
    fail(fn, ("the size of 'milestone' must be the size of 'learning_rates', got %d and %d"):format(#milestone, #learning_rates))
  end
  local lr, last = {}, 0
  for i, item in ipairs(milestone) do
    pos_int(fn, "milestone[" .. (i - 1) .. "]", item)
    if type(learning_rates[i]) ~= "number" then
      fail(fn, ("'learning_rates[%d]' must be a number, got %s"):format(i - 1, type(learning_rates[i])))
    end
    if item < last then
      fail(fn, ("milestone[%d] must be greater than milestone[%d], got %d and %d"):format(i - 1, i - 2, item, last))
    end
    for _ = 1, item - last do lr[#lr + 1] = learning_rates[i] end
    last = item
  end
  return lr
end

--- learning_rate * decay_rate ^ (epoch / decay_epoch), epoch = floor(i / step_per_epoch);
-- is_stair floors the exponent.
function M.exponential_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  is_stair = check_decay("exponential_decay_lr", learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  local lr = {}
  for i = 0, total_step - 1 do
    local e = floor(i / step_per_epoch)
    if is_stair then lr[#lr + 1] = learning_rate * decay_rate ^ floor(e / decay_epoch)
    else lr[#lr + 1] = learning_rate * decay_rate ^ (e / decay_epoch) end
  end
  return lr
end

--- learning_rate * e ^ (-decay_rate * epoch); is_stair: epoch rounded down to a multiple
-- of decay_epoch.
function M.natural_exp_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  is_stair = check_decay("natural_exp_decay_lr", learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  local lr, e_ = {}, math.exp(1)
  for i = 0, total_step - 1 do
    local x = floor(i / step_per_epoch)
    if is_stair then x = floor(x / decay_epoch) * decay_epoch end
    lr[#lr + 1] = learning_rate * e_ ^ (-decay_rate * x)
  end
  return lr
end

--- learning_rate / (1 + decay_rate * epoch / decay_epoch); is_stair floors epoch/decay_epoch.
function M.inverse_decay_lr(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  is_stair = check_decay("inverse_decay_lr", learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
  local lr = {}
  for i = 0, total_step - 1 do
    local e = floor(i / step_per_epoch)
    if is_stair then lr[#lr + 1] = learning_rate / (1 + decay_rate * floor(e / decay_epoch))
    else lr[#lr + 1] = learning_rate / (1 + decay_rate * e / decay_epoch) end
  end
  return lr
end

--- min_lr + 0.5 (max_lr - min_lr)(1 + cos(pi * min(epoch, decay_epoch) / decay_epoch))
function M.cosine_decay_lr(min_lr, max_lr, total_step, step_per_epoch, decay_epoch)
  local fn = "cosine_decay_lr"
  nonneg_num(fn, "min_lr", min_lr)
  pos_num(fn, "max_lr", max_lr)
  pos_int(fn, "total_step", total_step)
  pos_int(fn, "step_per_epoch", step_per_epoch)
  pos_int(fn, "decay_epoch", decay_epoch)
  if min_lr >= max_lr then fail(fn, ("'max_lr' must be greater than 'min_lr', got %s and %s"):format(max_lr, min_lr)) end
  local delta = 0.5 * (max_lr - min_lr)
  local lr = {}
  for i = 0, total_step - 1 do
    local t = math.min(floor(i / step_per_epoch), decay_epoch)
    lr[#lr + 1] = min_lr + delta * (1 + math.cos(math.pi * t / decay_epoch))
  end
  return lr
end

--- (learning_rate - end) * (1 - t / decay_epoch) ^ power + end, t = min(epoch, decay_epoch);
-- update_decay_epoch: t = epoch and decay_epoch grows to the next multiple of itself.
function M.polynomial_decay_lr(learning_rate, end_learning_rate, total_step, step_per_epoch, decay_epoch, power,
                               update_decay_epoch)
  local fn = "polynomial_decay_lr"
  pos_num(fn, "learning_rate", learning_rate)
  nonneg_num(fn, "end_learning_rate", end_learning_rate)
  pos_num(fn, "power", power)
  pos_int(fn, "total_step", total_step)
  pos_int(fn, "step_per_epoch", step_per_epoch)
  pos_int(fn, "decay_epoch", decay_epoch)
  update_decay_epoch = opt_bool(fn, "update_decay_epoch", update_decay_epoch)
  local origin = decay_epoch
  local lr, delta = {}, learning_rate - end_learning_rate
  for i = 0, total_step - 1 do
    local cur = floor(i / step_per_epoch)
    local t
    if update_decay_epoch then
      decay_epoch, t = origin * math.max(math.ceil(cur / origin), 1), cur
    else
      t = math.min(decay_epoch, cur)
    end
    lr[#lr + 1] = delta * (1 - t / decay_epoch) ^ power + end_learning_rate
  end
  return lr
end

--- learning_rate * min(epoch, warmup_epoch) / warmup_epoch
function M.warmup_lr(learning_rate, total_step, step_per_epoch, warmup_epoch)
  local fn = "warmup_lr"
  nonneg_num(fn, "learning_rate", learning_rate)
  pos_int(fn, "warmup_epoch", warmup_epoch)
  pos_int(fn, "total_step", total_step)
  pos_int(fn, "step_per_epoch", step_per_epoch)
  local lr = {}
  for i = 0, total_step - 1 do
    local t = math.min(warmup_epoch, floor(i / step_per_epoch))
    lr[#lr + 1] = learning_rate * t / warmup_epoch
  end
  return lr
end

return M
