--- spore.train.LearningRateScheduler(learning_rate_function): MindSpore 2.10's callback. After
-- every training step, new_lr = learning_rate_function(lr, cur_step_num) (lr: the optimizer's
-- learning rate as float32 prints it, as MindSpore's np.array2string); when it differs (relative
-- 1e-10) the optimizer's learning_rate becomes new_lr (float32). Only an optimizer with one
-- fixed learning rate.
local class = require("spore.class")

local LRS = class("LearningRateScheduler")

function LRS:__init(fn)
  if type(fn) ~= "function" then
    error("LearningRateScheduler: learning_rate_function must be a function(lr, cur_step_num), got " .. type(fn), 3)
  end
  self.learning_rate_function = fn
end

function LRS:step_end(ctx)
  local p = require("spore.train.callbacks.reduce_lr_on_plateau").fixed_lr_param(ctx.optimizer, "LearningRateScheduler")
  local lr = tonumber(require("spore.train.callbacks").format_loss(p.data:item()))
  local new_lr = self.learning_rate_function(lr, ctx.cur_step_num)
  if type(new_lr) ~= "number" then error("LearningRateScheduler: the function must return a number, got " .. type(new_lr), 0) end
  if math.abs(lr - new_lr) > 1e-10 * math.max(math.abs(lr), math.abs(new_lr)) then p.data:fill_(new_lr) end
end
-- MindSpore's step_end is called at train steps and at eval steps alike; an eval step has no
-- optimizer to change, so spore calls it at train steps only
LRS.on_train_step_end = LRS.step_end
LRS.step_end = nil

return LRS
