--- spore.train.TimeMonitor([data_size][, data_time][, opts{print=}]) or TimeMonitor{data_size=,
-- data_time=, print=}: MindSpore 2.10's callback. At each epoch end (training and, in fit or
-- eval, evaluation: its hooks are epoch_begin/epoch_end) it prints
-- "Train epoch time: X ms, per step time: Y ms" ("Eval ..." for evaluation), Y = X / batch_num
-- (or data_size when there is no batch_num). data_time = true appends
-- " (data time: Z ms)": Z = the time spent between steps (fetching data, on the host) per step.
local B = require("ffi.data")
local class = require("spore.class")
local optcheck = require("spore.opts")

local TimeMonitor = class("TimeMonitor")

function TimeMonitor:__init(data_size, data_time, opts)
  if type(data_size) == "table" then
    local o = optcheck.check("TimeMonitor", data_size, { "data_size", "data_time", "print" }, nil,
      { data_size = "integer", data_time = "boolean", print = "function" }, 4)
    data_size, data_time, opts = o.data_size, o.data_time, o
  elseif type(data_time) == "table" then
    data_time, opts = nil, data_time
  end
  if opts and opts ~= nil then optcheck.check("TimeMonitor", opts, { "data_size", "data_time", "print" }, nil, nil, 4) end
  if data_size ~= nil and (type(data_size) ~= "number" or data_size < 1 or data_size ~= math.floor(data_size)) then
    error("TimeMonitor: data_size must be a positive integer, got " .. tostring(data_size), 3)
  end
  if data_time ~= nil and type(data_time) ~= "boolean" then
    error("TimeMonitor: data_time must be a boolean, got " .. type(data_time), 3)
  end
  self.data_size, self.data_time = data_size, data_time == true
  self.print = (opts or {}).print or require("spore.train.callbacks").default_print
  self.data_time_sum, self.data_time_start = 0, 0
end
function TimeMonitor:on_train_step_begin()
  if self.data_time then self.data_time_sum = self.data_time_sum + (B.now() - self.data_time_start) end
end
function TimeMonitor:on_train_step_end()
  if self.data_time then self.data_time_start = B.now() end
end
function TimeMonitor:epoch_begin()
  self._t0 = B.now()
  if self.data_time then self.data_time_sum, self.data_time_start = 0, B.now() end
end
function TimeMonitor:epoch_end(ctx)
  local ms = (B.now() - (self._t0 or B.now())) * 1000
  -- MindSpore divides by batch_num (steps per epoch) when it has one, else data_size
  local steps = (ctx.batch_num and ctx.batch_num > 0) and ctx.batch_num or self.data_size
  if type(steps) ~= "number" or steps < 1 then error("TimeMonitor: step size must be a positive integer", 0) end
  self.last_epoch_ms, self.last_step_ms = ms, ms / steps
  local mode = ctx.mode or ""
  mode = mode:sub(1, 1):upper() .. mode:sub(2)
  local line = string.format("%s epoch time: %5.3f ms, per step time: %5.3f ms", mode, ms, ms / steps)
  if self.data_time then
    self.last_data_ms = self.data_time_sum * 1000 / steps
    line = line .. string.format(" (data time: %5.3f ms)", self.last_data_ms)
  end
  self.print(line)
end

return TimeMonitor
