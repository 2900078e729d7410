--- spore.nn losses: SoftmaxCrossEntropyWithLogits (nn/softmax_cross_entropy.lua) and
-- CrossEntropyLoss (nn/cross_entropy_loss.lua), one class per file, gathered here with the
-- softmax() helper.
local T = require("spore.tensor")
local K = require("ffi.nn")

local M = {}
M.SoftmaxCrossEntropyWithLogits = require("spore.nn.softmax_cross_entropy")
M.CrossEntropyLoss = require("spore.nn.cross_entropy_loss")

--- Softmax over the last dim of [N, C] (a new tensor).
function M.softmax(x)
  local out = T.empty(x:shape(), nil, x:device())
  K.softmax(out, x)
  return out
end
return M
