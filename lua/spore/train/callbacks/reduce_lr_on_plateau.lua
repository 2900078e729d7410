--- spore.train.ReduceLROnPlateau{monitor="eval_loss", factor=0.1, patience=10, verbose=false,
-- mode="auto", min_delta=1e-4, cooldown=0, min_lr=0} (or positionally in MindSpore's order).
-- MindSpore 2.10's behaviour at each epoch end: the monitored value (see EarlyStopping) that
-- improves on the best (by min_delta) becomes the best and resets wait; otherwise, out of
-- cooldown, wait += 1 and at wait >= patience the optimizer's learning_rate becomes
-- max(lr * factor, min_lr) in float32 (when lr > min_lr), cooldown starts and wait resets.
-- Only an optimizer with one fixed learning rate (a learning_rate Parameter): a dynamic or
-- grouped lr is an error, as MindSpore's.
local class = require("spore.class")
local optcheck = require("spore.opts")
local C = require("spore.train.callbacks.monitor_common")
local f32 = require("ffi.tensor").to_float32

local R = class("ReduceLROnPlateau")
local ORDER = { "monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr" }
local KNOWN = { "monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr", "print" }
local TYPES = { monitor = "string", factor = "number", patience = "integer", verbose = "boolean", mode = "string",
  min_delta = "number", cooldown = "integer", min_lr = "number", print = "function" }

function R:__init(a, ...)
  local o
  if type(a) == "table" then o = optcheck.check("ReduceLROnPlateau", a, KNOWN, nil, TYPES, 4)
  else
    o = {}
    local args = { a, ... }
    for i, k in ipairs(ORDER) do o[k] = args[i] end
    optcheck.check("ReduceLROnPlateau", o, KNOWN, nil, TYPES, 4)
  end
  self.monitor = o.monitor or "eval_loss"
  self.factor = o.factor or 0.1
  if not (self.factor > 0 and self.factor < 1) then
    error("ReduceLROnPlateau: factor must be in (0, 1), got " .. self.factor, 3)
  end
  self.patience = o.patience or 10
  self.verbose, self.mode = o.verbose == true, o.mode or "auto"
  if self.mode ~= "auto" and self.mode ~= "min" and self.mode ~= "max" then
    error("ReduceLROnPlateau: mode should be 'auto', 'min' or 'max', but got " .. self.mode, 3)
  end
  self.min_delta = math.abs(o.min_delta or 1e-4)
  self.cooldown, self.min_lr = o.cooldown or 0, o.min_lr or 0
  if self.patience < 0 or self.cooldown < 0 then error("ReduceLROnPlateau: patience and cooldown must be non-negative", 3) end
  self.print = o.print or print
  self.cooldown_counter, self.wait = 0, 0
  self._min = C.is_min(self.mode, self.monitor)
  self.best = self._min and math.huge or -math.huge
end

function R:is_improvement(a, b)
  if self._min then return a < b - self.min_delta end
  return a > b + self.min_delta
end

--- The optimizer's one fixed learning-rate Parameter, or raises (as MindSpore's callbacks).
function R.fixed_lr_param(opt, who)
  local p = type(opt) == "table" and rawget(opt, "lr_param")
  local grouped = false
  for _, g in ipairs(type(opt) == "table" and rawget(opt, "groups") or {}) do if g.lr ~= nil then grouped = true end end
  if not p or grouped or type(rawget(opt, "lr_spec")) == "function" or p.data:numel() ~= 1 then
    error(who .. " does not support dynamic learning rate and group learning rate now.", 0)
  end
  return p
end

function R:on_train_begin()
  self.cooldown_counter, self.wait = 0, 0
  self.best = self._min and math.huge or -math.huge
end

function R:on_train_epoch_end(ctx)
  local p = R.fixed_lr_param(ctx.optimizer, "ReduceLROnPlateau")
  local cur_lr = p.data:item()
  local v = C.value(ctx, self.monitor, "Learning rate reduction")
  if v == nil then return end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.wait = 0
  end
  if self:is_improvement(v, self.best) then
    self.best, self.wait = v, 0
  elseif self.cooldown_counter <= 0 then
    self.wait = self.wait + 1
    if self.wait >= self.patience then
      if cur_lr > self.min_lr then
        local new_lr = math.max(f32(cur_lr * self.factor), self.min_lr)
        p.data:fill_(new_lr)
        if self.verbose then
          self.print(("Epoch %05d: ReduceLROnPlateau reducing learning rate to %s."):format(ctx.cur_epoch_num,
            require("spore.train.callbacks").format_loss(new_lr)))
        end
      end
      self.cooldown_counter, self.wait = self.cooldown, 0
    end
  end
end

return R
