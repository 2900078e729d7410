--- spore.nn.CrossEntropyLoss{reduction="mean"}: SoftmaxCrossEntropyWithLogits with sparse
-- int32 labels (or dense float probabilities, chosen by the labels' rank at each forward).
local base = require("spore.nn.module")
local SCE = require("spore.nn.softmax_cross_entropy")

local CE = base.class("CrossEntropyLoss", SCE)
function CE:__init(opts)
  opts = opts or {}
  self.sparse = true
  self.reduction = opts.reduction or "mean"
  self.label_smoothing = opts.label_smoothing or 0
  if self.label_smoothing ~= 0 then error("CrossEntropyLoss: label_smoothing is not supported yet", 3) end
end
function CE:forward(logits, labels)
  if type(labels) ~= "table" or not labels.shape then error("loss: labels must be a Tensor, got " .. type(labels), 2) end
  self.sparse = labels:dim() == 1
  return SCE.forward(self, logits, labels)
end

return CE
