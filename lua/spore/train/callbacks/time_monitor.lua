--- spore.train.TimeMonitor([data_size][, opts{print=}]): at each epoch end prints
-- "epoch time: X ms, per step time: Y ms" (Y = X / steps per epoch, or data_size).
local B = require("ffi.data")
local class = require("spore.class")

local TimeMonitor = class("TimeMonitor")

function TimeMonitor:__init(data_size, opts)
  if type(data_size) == "table" then data_size, opts = nil, data_size end
  self.data_size, self.print = data_size, (opts or {}).print or require("spore.train.callbacks").default_print
end
function TimeMonitor:on_train_epoch_begin(ctx) self._t0, self._s0 = B.now(), ctx.cur_step_num end
function TimeMonitor:on_train_epoch_end(ctx)
  local ms = (B.now() - (self._t0 or B.now())) * 1000
  -- MindSpore divides by batch_num (steps per epoch) when it has one, else data_size
  local steps = (ctx.batch_num and ctx.batch_num > 0) and ctx.batch_num or self.data_size
  if type(steps) ~= "number" or steps < 1 then error("TimeMonitor: step size must be a positive integer", 0) end
  self.last_epoch_ms, self.last_step_ms = ms, ms / steps
  self.print(string.format("epoch time: %5.3f ms, per step time: %5.3f ms", ms, ms / steps))
end

return TimeMonitor
