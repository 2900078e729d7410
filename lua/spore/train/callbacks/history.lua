--- spore.train.History(): MindSpore 2.10's callback. history.history = {net_output = {...},
-- <metric> = {...}} (one entry per epoch end: the last step's loss and, in fit, the
-- evaluation's metrics); history.epoch = {epoch = {1, 2, ...}}. As MindSpore, its hooks are
-- begin/epoch_end, which Model calls for training and (in Model:eval) evaluation alike.
local class = require("spore.class")

local History = class("History")

function History:__init(...)
  if select("#", ...) > 0 and (...) ~= nil then
    if type((...)) == "table" then require("spore.opts").check("History", (...), {}, nil, nil, 4) end
    error("History() takes no arguments", 3)
  end
  self.history, self.epoch = {}, nil
end
function History:begin() self.epoch = { epoch = {} } end
function History:epoch_end(ctx)
  local e = self.epoch.epoch
  e[#e + 1] = ctx.cur_epoch_num or 1
  local out = ctx.net_outputs
  if type(out) == "table" then out = out[1] end
  local cur = { net_output = out }
  for k, v in pairs(ctx.metrics or {}) do cur[k] = v end
  for k, v in pairs(cur) do
    self.history[k] = self.history[k] or {}
    local h = self.history[k]
    h[#h + 1] = v
  end
end

return History
