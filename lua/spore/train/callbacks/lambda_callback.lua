--- spore.train.LambdaCallback{on_train_epoch_end = function(ctx) ... end, ...}: MindSpore's
-- LambdaCallback; its keys are the 12 hook names (on_train_begin ... on_eval_end).
local class = require("spore.class")
local optcheck = require("spore.opts")

local LambdaCallback = class("LambdaCallback")
local HOOKS = { "on_train_epoch_begin", "on_train_epoch_end", "on_train_step_begin", "on_train_step_end",
  "on_train_begin", "on_train_end", "on_eval_epoch_begin", "on_eval_epoch_end", "on_eval_step_begin",
  "on_eval_step_end", "on_eval_begin", "on_eval_end" }

function LambdaCallback:__init(o)
  local types = {}
  for _, k in ipairs(HOOKS) do types[k] = "function" end
  o = optcheck.check("LambdaCallback", o, HOOKS, nil, types, 4)
  for k, f in pairs(o) do self[k] = function(_, ctx) return f(ctx) end end
end

return LambdaCallback
