--- spore.zoo — pieces of the MindSpore model zoo's ResNet recipe (mindspore-ai/models,
-- official/cv/ResNet) that a translated train.py needs, with the zoo's names and values:
--   spore.zoo.get_lr{...} / get_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch,
--                                  steps_per_epoch, lr_decay_mode)   (src/lr_generator.py)
--   spore.zoo.warmup_cosine_annealing_lr(lr, steps_per_epoch, warmup_epochs, max_epoch, global_step)
--   spore.zoo.CrossEntropySmooth(sparse, reduction, smooth_factor, num_classes)
--   spore.zoo.init_group_params(net, weight_decay)                  (src/util.py)
local f32 = require("spore.nn.learning_rate_schedule").f32

local M = {}
M.CrossEntropySmooth = require("spore.zoo.cross_entropy_smooth")

local function slice(t, from) -- t[from+1 ..] (Python's t[from:])
  local r = {}
  for i = from + 1, #t do r[#r + 1] = t[i] end
  return r
end

-- the generators, line for line from src/lr_generator.py (Python floats: Lua doubles)
local function steps_lr(lr_init, lr_max, total, warmup, start)
  local idx = { 0.3 * total, 0.6 * total, 0.8 * total }
  local r = {}
  for i = 0, total - 1 do
    local lr
    if i < warmup then lr = lr_init + (lr_max - lr_init) * i / warmup
    elseif i < idx[1] then lr = lr_max
    elseif i < idx[2] then lr = lr_max * 0.1
    elseif i < idx[3] then lr = lr_max * 0.01
    else lr = lr_max * 0.001 end
    r[#r + 1] = lr
  end
  return slice(r, start)
end

local function step_lr(lr_max, total, start)
  local idx = { 0.2 * total, 0.5 * total, 0.7 * total, 0.9 * total }
  local r = {}
  for i = 0, total - 1 do
    local lr
    if i < idx[1] then lr = lr_max
    elseif i < idx[2] then lr = lr_max * 0.1
    elseif i < idx[3] then lr = lr_max * 0.01
    elseif i < idx[4] then lr = lr_max * 0.001
    else lr = 0.00005 end
    r[#r + 1] = lr
  end
  return slice(r, start)
end

local function poly_lr(lr_init, lr_max, total, warmup, start)
  local inc = warmup ~= 0 and (lr_max - lr_init) / warmup or 0
  local r = {}
  for i = 0, total - 1 do
    local lr
    if i < warmup then lr = lr_init + inc * i
    else
      local base = 1.0 - (i - warmup) / (total - warmup)
      lr = lr_max * base * base
      if lr < 0.0 then lr = 0.0 end
    end
    r[#r + 1] = lr
  end
  return slice(r, start)
end

local function cosine_lr(lr_init, lr_max, total, warmup, start)
  local decay_steps = total - warmup
  local r = {}
  for i = 0, total - 1 do
    local lr
    if i < warmup then
      local inc = (lr_max - lr_init) / warmup
      lr = lr_init + inc * (i + 1)
    else
      local linear_decay = (total - i) / decay_steps
      local cosine_decay = 0.5 * (1 + math.cos(math.pi * 2 * 0.47 * i / decay_steps))
      lr = lr_max * (linear_decay * cosine_decay + 0.00001)
    end
    r[#r + 1] = lr
  end
  return slice(r, start)
end

local function linear_lr(lr_init, lr_end, lr_max, total, warmup, start)
  local r = {}
  for i = 0, total - 1 do
    local lr
    if i < warmup then lr = lr_init + (lr_max - lr_init) * i / warmup
    else lr = lr_max - (lr_max - lr_end) * (i - warmup) / (total - warmup) end
    r[#r + 1] = lr
  end
  return slice(r, start)
end

local GET_LR_ARGS = { "lr_init", "lr_end", "lr_max", "warmup_epochs", "total_epochs", "start_epoch", "steps_per_epoch",
  "lr_decay_mode" }

--- get_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch, lr_decay_mode)
-- or get_lr{lr_init=, ...}: the zoo's learning-rate array from step start_epoch*steps_per_epoch
-- on, as float32 values (the zoo returns np.float32). lr_decay_mode: "steps" (warm-up, then
-- x0.1 at 30/60/80 %), "step" (x0.1 at 20/50/70/90 %, then 5e-5), "poly" (warm-up, then
-- quadratic decay), "cosine" (warm-up, then linear x cosine decay), anything else "linear"
-- (warm-up, then linear to lr_end), as the zoo's if/else chain.
function M.get_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch, lr_decay_mode)
  if type(lr_init) == "table" then
    local o = require("spore.opts").check("spore.zoo.get_lr", lr_init, GET_LR_ARGS, nil, nil, 3)
    lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch, lr_decay_mode =
      o.lr_init, o.lr_end, o.lr_max, o.warmup_epochs, o.total_epochs, o.start_epoch, o.steps_per_epoch, o.lr_decay_mode
  end
  local args = { lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch }
  for i = 1, 7 do
    if type(args[i]) ~= "number" then
      error(("spore.zoo.get_lr: %s must be a number, got %s"):format(GET_LR_ARGS[i], type(args[i])), 2)
    end
  end
  if type(lr_decay_mode) ~= "string" then
    error("spore.zoo.get_lr: lr_decay_mode must be a string, got " .. type(lr_decay_mode), 2)
  end
  local total = steps_per_epoch * total_epochs
  local warmup = steps_per_epoch * warmup_epochs
  local start = steps_per_epoch * start_epoch
  local r
  if lr_decay_mode == "steps" then r = steps_lr(lr_init, lr_max, total, warmup, start)
  elseif lr_decay_mode == "step" then r = step_lr(lr_max, total, start)
  elseif lr_decay_mode == "poly" then r = poly_lr(lr_init, lr_max, total, warmup, start)
  elseif lr_decay_mode == "cosine" then r = cosine_lr(lr_init, lr_max, total, warmup, start)
  else r = linear_lr(lr_init, lr_end, lr_max, total, warmup, start) end
  for i = 1, #r do r[i] = f32(r[i]) end
  return r
end

--- warmup_cosine_annealing_lr(lr, steps_per_epoch, warmup_epochs, max_epoch=120, global_step=0)
-- (the zoo's lr for its other nets), float32 values from global_step on.
function M.warmup_cosine_annealing_lr(lr, steps_per_epoch, warmup_epochs, max_epoch, global_step)
  max_epoch, global_step = max_epoch or 120, global_step or 0
  local total = math.floor(max_epoch * steps_per_epoch)
  local warmup = math.floor(warmup_epochs * steps_per_epoch)
  local decay_steps = total - warmup
  local r = {}
  for i = 0, total - 1 do
    local v
    if i < warmup then
      v = 0 + (lr - 0) / warmup * (i + 1)
    else
      local linear_decay = (total - i) / decay_steps
      local cosine_decay = 0.5 * (1 + math.cos(math.pi * 2 * 0.47 * i / decay_steps))
      v = lr * (linear_decay * cosine_decay + 0.00001)
    end
    r[#r + 1] = f32(v)
  end
  return slice(r, global_step)
end

--- init_group_params(net, weight_decay) → the zoo's two groups: weight decay on every trainable
-- parameter whose name has none of "beta", "gamma", "bias"; none on the others. (The zoo
-- adds {order_params = net.trainable_params()}, which only orders the optimizer's state.)
function M.init_group_params(net, weight_decay)
  local decayed, other = {}, {}
  for _, p in ipairs(net:trainable_params()) do
    local n = p.name
    if not n:find("beta", 1, true) and not n:find("gamma", 1, true) and not n:find("bias", 1, true) then
      decayed[#decayed + 1] = p
    else
      other[#other + 1] = p
    end
  end
  return { { params = decayed, weight_decay = weight_decay }, { params = other } }
end

return M
