--- spore.train.LossMonitor(per_print_times=1[, opts{print=}]) or LossMonitor{per_print_times=,
-- print=}: MindSpore 2.10's callback. Prints "epoch: E step: S, loss is L" (S within the epoch;
-- L as MindSpore 2.10 prints it: the Python float of the float32 loss, e.g. 1.0536867380142212)
-- every per_print_times steps; raises "In epoch: E step: S, loss is NAN or INF, training process
-- cannot continue, terminating training." on NaN/Inf, unless the training runs with
-- allow_nonfinite = true (ctx.allow_nonfinite): then it prints the loss and training goes on.
-- In fit, at an epoch end with an evaluation, prints "Eval result: epoch E, metrics: {...}"
-- (keys sorted; values as Python floats, where MindSpore shows numpy scalars' repr).
-- A reused monitor whose last printed step is past the current one (a new train() call counts
-- from 0) steps its mark back, as MindSpore's.
-- (spore.train.callbacks holds the shared helpers: py_repr, format_loss, the default print.)
local class = require("spore.class")
local f32 = require("ffi.tensor").to_float32

local LossMonitor = class("LossMonitor")

-- the aggregator requires this file: reach it at call time, not load time
local function cbs() return require("spore.train.callbacks") end

function LossMonitor:__init(per_print_times, opts)
  if type(per_print_times) == "table" and opts == nil then -- LossMonitor{per_print_times=, print=}
    opts = require("spore.opts").check("LossMonitor", per_print_times, { "per_print_times", "print" }, nil,
      { per_print_times = "integer", print = "function" }, 4)
    per_print_times = opts.per_print_times
  elseif opts ~= nil then
    require("spore.opts").check("LossMonitor", opts, { "print" }, nil, { print = "function" }, 4)
  end
  per_print_times = per_print_times or 1
  if type(per_print_times) ~= "number" or per_print_times < 0 or per_print_times ~= math.floor(per_print_times) then
    error("LossMonitor: per_print_times must be a non-negative integer", 3)
  end
  self.per_print_times, self._last, self.print = per_print_times, 0, (opts or {}).print or cbs().default_print
end
function LossMonitor:on_train_step_end(ctx)
  local loss = ctx.net_outputs
  if type(loss) == "table" then loss = loss[1] end
  local s = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  if (loss ~= loss or loss == math.huge or loss == -math.huge) and not ctx.allow_nonfinite then
    error(string.format("In epoch: %d step: %d, loss is NAN or INF, training process cannot continue, "
      .. "terminating training.", ctx.cur_epoch_num, s), 0)
  end
  local n = self.per_print_times
  if n ~= 0 and ctx.cur_step_num <= self._last then
    while ctx.cur_step_num <= self._last do self._last = self._last - math.max(n, 1) end
  end
  if n ~= 0 and ctx.cur_step_num - self._last >= n then
    self._last = ctx.cur_step_num
    self.print(string.format("epoch: %d step: %d, loss is %s", ctx.cur_epoch_num, s, cbs().py_repr(f32(loss))))
  end
end
function LossMonitor:on_train_epoch_end(ctx)
  local m = ctx.metrics
  if m and next(m) then
    self.print(string.format("Eval result: epoch %d, metrics: %s", ctx.cur_epoch_num, cbs().py_dict(m)))
  end
end

return LossMonitor
