--- spore.train.LossMonitor(per_print_times=1[, opts{print=}]): prints
-- "epoch: E step: S, loss is L" (S within the epoch) every per_print_times steps;
-- raises "epoch: E step: S. Invalid loss, terminating training." on NaN/Inf, unless the
-- training runs with allow_nonfinite = true (ctx.allow_nonfinite): then it prints the loss
-- and training goes on, as asked.
-- (spore.train.callbacks holds the shared helpers: format_loss, the default print.)
local class = require("spore.class")

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
  local s = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  if (loss ~= loss or loss == math.huge or loss == -math.huge) and not ctx.allow_nonfinite then
    error(string.format("epoch: %d step: %d. Invalid loss, terminating training.", ctx.cur_epoch_num, s), 0)
  end
  if self.per_print_times ~= 0 and ctx.cur_step_num - self._last >= self.per_print_times then
    self._last = ctx.cur_step_num
    self.print(string.format("epoch: %d step: %d, loss is %s", ctx.cur_epoch_num, s, cbs().format_loss(loss)))
  end
end

return LossMonitor
