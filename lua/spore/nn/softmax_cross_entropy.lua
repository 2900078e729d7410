--- spore.nn.SoftmaxCrossEntropyWithLogits{sparse=false, reduction="none"}: per row
-- logsumexp(x) - x[label]; sparse labels are an int32 Tensor [N], dense ones float32 [N,C].
-- forward(logits, labels) → a Lua number (mean for "mean" and "none", sum for "sum");
-- self.output keeps the per-sample losses [N]; backward() → grad wrt logits ("none"
-- differentiates the sum of the per-sample losses).
local base = require("spore.nn.module")
local T = require("spore.tensor")
local K = require("ffi.nn")

local SCE = base.class("SoftmaxCrossEntropyWithLogits")
function SCE:__init(sparse, reduction)
  if type(sparse) == "table" then
    local o = require("spore.opts").check("SoftmaxCrossEntropyWithLogits", sparse, { "sparse", "reduction" }, nil,
      { sparse = "boolean", reduction = "string" }, 4)
    sparse, reduction = o.sparse, o.reduction
  end
  self.sparse = sparse and true or false
  self.reduction = reduction or "none"
  if self.reduction ~= "none" and self.reduction ~= "mean" and self.reduction ~= "sum" then
    error("loss: reduction must be 'none', 'mean' or 'sum', got '" .. tostring(self.reduction) .. "'", 3)
  end
end
function SCE:__repr() return ("%s(sparse=%s, reduction=%s)"):format(getmetatable(self).__name, tostring(self.sparse), self.reduction) end

function SCE:forward(logits, labels)
  if type(logits) ~= "table" or not logits.shape then error("loss: logits must be a Tensor, got " .. type(logits), 2) end
  if type(labels) ~= "table" or not labels.shape then error("loss: labels must be a Tensor, got " .. type(labels), 2) end
  local s = logits:shape()
  if #s ~= 2 then error("loss: expected logits [N, C], got " .. #s .. "-D", 2) end
  if self.sparse and labels:dtype() ~= "int32" then
    labels = labels:to("int32")
  elseif not self.sparse and labels:dtype() ~= "float32" then
    labels = labels:to("float32")
  end
  local dev = logits:device()
  labels = labels:to(dev) -- labels follow the logits (MindSpore moves host labels to the device)
  local loss = self:buffer("output", { s[1] }, nil, dev)
  local prob = self:buffer("prob", s, nil, dev)
  K.xent_forward(loss, prob, logits, labels)
  self._labels = labels
  local sum = loss:sum() -- the engine reduces (accumulating in double)
  self.value = (self.reduction == "sum") and sum or sum / s[1]
  return self.value
end

function SCE:backward(grad_loss)
  local s = self.prob:shape()
  local scale = self.reduction == "mean" and 1 / s[1] or 1
  if type(grad_loss) == "number" then scale = scale * grad_loss; grad_loss = nil end
  local gx = self:buffer("grad_input", s, nil, self.prob:device())
  if T.is_tensor(grad_loss) then grad_loss = grad_loss:to(self.prob:device()) end
  K.xent_backward(gx, self.prob, self._labels, grad_loss, scale)
  return gx
end

return SCE
