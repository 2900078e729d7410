--- spore.train.CheckpointConfig{save_checkpoint_steps=1, keep_checkpoint_max=5,
-- append_info=nil|{"epoch_num","step_num"}, saver=fn}. (MindSpore's time-based
-- options are accepted and ignored.) Its fields are plain fields; __config = true marks it.
local class = require("spore.class")

local CheckpointConfig = class("CheckpointConfig")

function CheckpointConfig:__init(o)
  o = o or {}
  self.save_checkpoint_steps = o.save_checkpoint_steps == nil and 1 or o.save_checkpoint_steps
  self.keep_checkpoint_max = o.keep_checkpoint_max == nil and 5 or o.keep_checkpoint_max
  self.append_info, self.saver, self.__config = o.append_info, o.saver, true
  for _, k in ipairs(self.append_info or {}) do
    if type(k) ~= "string" and type(k) ~= "table" then error("CheckpointConfig: append_info entries are names or {name=value} tables", 3) end
  end
end

return CheckpointConfig
