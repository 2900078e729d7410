--- spore.train.EarlyStopping{monitor="eval_loss", min_delta=0, patience=0, verbose=false,
-- mode="auto", baseline=nil, restore_best_weights=false} (or positionally, MindSpore's order:
-- EarlyStopping(monitor, min_delta, patience, verbose, mode, baseline, restore_best_weights)).
-- MindSpore 2.10's behaviour: at each epoch end the monitored value ("loss": the last step's
-- loss; other names: fit's eval_results, e.g. "eval_loss", "accuracy") is compared with the
-- best: wait += 1; an improvement (min mode: v < best - min_delta; max: v > best + min_delta)
-- makes it the best and, when baseline is nil or v improves on it, resets wait; wait >=
-- patience requests the stop (and restores the best epoch's weights with
-- restore_best_weights). A missing value (or 0, as MindSpore's `if monitor_value`) skips the
-- epoch with a warning. As MindSpore 2.10, a given baseline is replaced by min_delta (its
-- constructor reads `baseline = check(min_delta) if baseline else None`).
-- Fields: wait, best, stopped_epoch.
local class = require("spore.class")
local optcheck = require("spore.opts")
local C = require("spore.train.callbacks.monitor_common")

local EarlyStopping = class("EarlyStopping")
local ORDER = { "monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights" }
local TYPES = { monitor = "string", min_delta = "number", patience = "integer", verbose = "boolean", mode = "string",
  baseline = "number", restore_best_weights = "boolean", print = "function" }
local KNOWN = { "monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights", "print" }

function EarlyStopping:__init(a, ...)
  local o
  if type(a) == "table" then o = optcheck.check("EarlyStopping", a, KNOWN, nil, TYPES, 4)
  else
    o = {}
    local args = { a, ... }
    for i, k in ipairs(ORDER) do o[k] = args[i] end
    optcheck.check("EarlyStopping", o, KNOWN, nil, TYPES, 4)
  end
  self.monitor = o.monitor or "eval_loss"
  self.min_delta = math.abs(o.min_delta or 0)
  self.patience = o.patience or 0
  if self.patience < 0 then error("EarlyStopping: patience must be a non-negative integer", 3) end
  self.verbose, self.mode = o.verbose == true, o.mode or "auto"
  if self.mode ~= "auto" and self.mode ~= "min" and self.mode ~= "max" then
    error("EarlyStopping: mode should be 'auto', 'min' or 'max', but got " .. self.mode, 3)
  end
  self.baseline = (o.baseline ~= nil and o.baseline ~= 0) and (o.min_delta or 0) or nil
  self.restore_best_weights = o.restore_best_weights == true
  self.print = o.print or print
  self.wait, self.stopped_epoch = 0, 0
  self._min = C.is_min(self.mode, self.monitor)
  self.best = self._min and math.huge or -math.huge
end

function EarlyStopping:is_improvement(a, b)
  if self._min then return a < b - self.min_delta end
  return a > b + self.min_delta
end

local function snapshot(net)
  local d = {}
  for _, kv in ipairs(net:parameters_and_names()) do d[#d + 1] = { kv[2], kv[2].data:clone() } end
  return d
end

function EarlyStopping:on_train_begin()
  self.wait, self.stopped_epoch = 0, 0
  self.best = self._min and math.huge or -math.huge
  self.best_weights = nil
end

function EarlyStopping:on_train_epoch_end(ctx)
  local cur = C.value(ctx, self.monitor, "Early stopping")
  if cur == nil then return end
  if self.restore_best_weights and self.best_weights == nil then self.best_weights = snapshot(ctx.train_network) end
  self.wait = self.wait + 1
  if self:is_improvement(cur, self.best) then
    self.best = cur
    if self.restore_best_weights then self.best_weights = snapshot(ctx.train_network) end
    if self.baseline == nil or self:is_improvement(cur, self.baseline) then self.wait = 0 end
  end
  if self.wait >= self.patience then
    self.stopped_epoch = ctx.cur_epoch_num
    ctx:request_stop()
    if self.restore_best_weights and self.best_weights then
      if self.verbose then self.print("Restoring model weights from the end of the best epoch.") end
      for _, e in ipairs(self.best_weights) do e[1].data:copy_(e[2]) end
    end
  end
end

function EarlyStopping:on_train_end()
  if self.stopped_epoch > 0 and self.verbose then self.print(("Epoch %05d: early stopping"):format(self.stopped_epoch)) end
end

return EarlyStopping
