--- spore.nn.CrossEntropyLoss{weight=nil, ignore_index=-100, reduction="mean", label_smoothing=0.0}
-- — mindspore.nn.CrossEntropyLoss (ops.cross_entropy), same semantics:
-- * labels of an integer dtype are class indices [N] (int32); a label equal to ignore_index
--   adds nothing and gets no gradient. Per row, with w = weight (or 1), ls = label_smoothing:
--     l[n] = (1 - ls) * w[y] * -log p[y]  +  ls / C * sum_c w[c] * -log p[c]
--   "mean" divides the sum by sum(w[y]) over the rows that are not ignored (MindSpore's
--   weighted mean; NaN when every row is ignored, as MindSpore's 0/0); "sum" sums.
-- * labels of a float dtype are probabilities [N, C]: targets t' = t * (1 - ls) + ls / C and
--   l[n] = -sum_c w[c] * t'[c] * log p[c]; "mean" divides by N (ignore_index plays no part).
-- forward(logits [N, C], labels) → a Lua number (the reduction; for "none" the mean of the
-- per-row losses, like SoftmaxCrossEntropyWithLogits); self.output keeps the per-row losses
-- [N] (MindSpore's "none" result). backward(grad) → d/d(logits) of the reduced value ("none":
-- of the sum of the rows, or weighted by a per-row grad Tensor [N]). One engine kernel each
-- way (engine/cpu/loss.c, sp_cross_entropy_forward/backward), on the logits' device.
local base = require("spore.nn.module")
local T = require("spore.tensor")
local K = require("ffi.nn")
local opts_check = require("spore.opts").check

local CE = base.class("CrossEntropyLoss")

local KNOWN = { "weight", "ignore_index", "reduction", "label_smoothing" }
local TYPES = { ignore_index = "integer", reduction = "string", label_smoothing = "number", weight = "table" }

--- CrossEntropyLoss(opts) or CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing)
-- (MindSpore's argument order).
function CE:__init(o, ignore_index, reduction, label_smoothing)
  if o ~= nil and (T.is_tensor(o) or (type(o) == "table" and o[1] ~= nil)) or ignore_index ~= nil or reduction ~= nil
      or label_smoothing ~= nil then
    o = { weight = o, ignore_index = ignore_index, reduction = reduction, label_smoothing = label_smoothing }
  end
  o = opts_check("CrossEntropyLoss", o, KNOWN, nil, TYPES, 4)
  self.reduction = o.reduction or "mean"
  if self.reduction ~= "none" and self.reduction ~= "mean" and self.reduction ~= "sum" then
    error("CrossEntropyLoss: reduction must be 'none', 'mean' or 'sum', got '" .. tostring(self.reduction) .. "'", 3)
  end
  self.ignore_index = o.ignore_index or -100
  self.label_smoothing = o.label_smoothing or 0
  if not (self.label_smoothing >= 0 and self.label_smoothing <= 1) then
    error("CrossEntropyLoss: label_smoothing must be in [0.0, 1.0], got " .. tostring(self.label_smoothing), 3)
  end
  local w = o.weight
  if w ~= nil then
    if not T.is_tensor(w) then w = T.from_table(w, "float32") end
    if w:dim() ~= 1 then error("CrossEntropyLoss: weight must be a 1-D Tensor [C], got " .. w:dim() .. "-D", 3) end
    if not w:dtype():match("^float") then error("CrossEntropyLoss: weight must be float16 or float32, got " .. w:dtype(), 3) end
    self.weight = w:to("float32"):contiguous()
  end
end

function CE:__repr()
  return ("CrossEntropyLoss(weight=%s, ignore_index=%d, reduction=%s, label_smoothing=%g)"):format(
    self.weight and ("[" .. self.weight:numel() .. "]") or "None", self.ignore_index, self.reduction, self.label_smoothing)
end

--- The row targets of this loss for class-index labels (a, b of sp_cross_entropy_forward) and
-- for probability labels; subclasses (the zoo's CrossEntropySmooth) override.
function CE:_coeffs(sparse, C)
  local ls = self.label_smoothing
  return 1 - ls, ls / C, self.weight, sparse and self.ignore_index or nil
end

local function check_inputs(name, logits, labels)
  if type(logits) ~= "table" or not logits.shape then error("loss: logits must be a Tensor, got " .. type(logits), 3) end
  if type(labels) ~= "table" or not labels.shape then error("loss: labels must be a Tensor, got " .. type(labels), 3) end
  local s = logits:shape()
  if #s ~= 2 then error(("%s: expected logits [N, C], got %d-D"):format(name, #s), 3) end
  return s
end

function CE:forward(logits, labels)
  local name = getmetatable(self).__name
  local s = check_inputs(name, logits, labels)
  local sparse = not labels:dtype():match("^float") and not labels:dtype():match("^bfloat")
  if sparse then
    if labels:dim() ~= 1 or labels:size(1) ~= s[1] then
      error(("%s: class-index labels must be [%d] (one per row of the logits), got [%s]"):format(name, s[1],
        table.concat(labels:shape(), ", ")), 2)
    end
    if labels:dtype() ~= "int32" then labels = labels:to("int32") end
  else
    if labels:dim() ~= 2 or labels:size(1) ~= s[1] or labels:size(2) ~= s[2] then
      error(("%s: float labels are class probabilities and must be [%d, %d] like the logits, got [%s] "
        .. "(class indices are an integer Tensor)"):format(name, s[1], s[2], table.concat(labels:shape(), ", ")), 2)
    end
    if labels:dtype() ~= "float32" then labels = labels:to("float32") end
  end
  local dev = logits:device()
  labels = labels:to(dev):contiguous()
  local a, b, w, ign = self:_coeffs(sparse, s[2])
  if w and w:numel() ~= s[2] then
    error(("%s: weight has %d values, the logits %d classes"):format(name, w:numel(), s[2]), 2)
  end
  if w then w = w:to(dev) end
  local loss = self:buffer("output", { s[1] }, nil, dev)
  local rw = self:buffer("row_weight", { s[1] }, nil, dev)
  local prob = self:buffer("prob", s, nil, dev)
  K.cross_entropy_forward(loss, rw, prob, logits:contiguous(), labels, w, ign, a, b, name)
  self._labels, self._w, self._ign, self._a, self._b = labels, w, ign, a, b
  local sum = loss:sum()
  if self.reduction == "sum" then
    self.denominator = 1
  elseif self.reduction == "mean" then
    -- class indices: the sum of the weights of the rows not ignored; probabilities: N
    self.denominator = (sparse and self:_weighted_mean()) and rw:sum() or s[1]
  else
    self.denominator = s[1]
  end
  self.value = sum / self.denominator
  return self.value
end

-- does "mean" divide by the row weights (MindSpore's nll_loss) rather than N?
function CE:_weighted_mean() return true end

function CE:backward(grad_loss)
  if not self.prob then error(getmetatable(self).__name .. ": backward before forward", 2) end
  local s = self.prob:shape()
  local scale = self.reduction == "mean" and 1 / self.denominator or 1
  if type(grad_loss) == "number" then scale = scale * grad_loss; grad_loss = nil end
  local dev = self.prob:device()
  local gx = self:buffer("grad_input", s, nil, dev)
  if T.is_tensor(grad_loss) then grad_loss = grad_loss:to(dev) end
  K.cross_entropy_backward(gx, self.prob, self._labels, self._w, grad_loss, self._ign, self._a, self._b, scale,
    getmetatable(self).__name)
  return gx
end

return CE
