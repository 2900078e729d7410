--- spore.train.metrics — accumulating classification metrics.
--   local m = Metrics.new({"accuracy", "top5", "loss"})
--   m:update(logits, labels, batch_loss)  -- logits [N,K]; labels [N] ints or [N,K] one-hot
--   m:eval() → {accuracy=, top5=, loss=}
-- accuracy: mean of argmax(logits) == label (labels are 0-based class ids, as
-- argmax's results; first maximum wins ties; one-hot labels are argmax-ed). topK: the
-- label is among topk(K)'s indices (ties broken by lower index, as argmax). loss: the
-- sample-weighted mean of the batch means (MindSpore's batch average when batches are
-- equal-sized).
local T = require("spore.tensor")
local class = require("spore.class")

local M = class("Metrics")

local ALIAS = { accuracy = "accuracy", acc = "accuracy", Accuracy = "accuracy", top1 = "accuracy",
  top5 = "top5", top_5_accuracy = "top5", Top5CategoricalAccuracy = "top5", loss = "loss", Loss = "loss" }

--- Canonical metric name ("accuracy", "topK", "loss"), or raises.
function M.canonical(name)
  if ALIAS[name] then return ALIAS[name] end
  local k = type(name) == "string" and name:match("^top(%d+)$")
  if k then return name end
  error("unknown metric '" .. tostring(name) .. "' (accuracy, top5, topK, loss)", 3)
end

function M.new(names)
  local self = setmetatable({ names = {}, k = {} }, M)
  for _, n in ipairs(names or { "accuracy" }) do
    local c = M.canonical(n)
    self.names[#self.names + 1] = c
    if c ~= "loss" and c ~= "accuracy" then self.k[c] = tonumber(c:match("%d+")) end
  end
  self:clear()
  return self
end

function M:clear()
  self.count, self.correct, self.loss_sum, self.loss_n = 0, 0, 0, 0
  self.topk = {}
  for c in pairs(self.k) do self.topk[c] = 0 end
end

function M:wants(name) for _, n in ipairs(self.names) do if n == name then return true end end return false end

--- Class indices (0-based, int64 tensor [N]) per row of labels: [N] class ids, or
-- [N,K] one-hot / probabilities (argmax over the classes).
local function label_index(labels)
  if labels:dim() == 1 then return labels end -- compared by value: any dtype works
  if labels:dim() ~= 2 then error("metrics: labels must be [N] class ids or [N, classes], got " .. labels:dim() .. "-d", 3) end
  return labels:argmax(2)
end
M.label_index = label_index

--- Add one batch. loss (optional) is the batch's mean loss. Everything is counted by
-- engine ops (argmax, topk, count_equal): no tensor memory is read from Lua.
function M:update(logits, labels, loss)
  if logits:dim() ~= 2 then error("metrics: logits must be [N, classes], got " .. logits:dim() .. "-d", 2) end
  local n, k = logits:size(1), logits:size(2)
  if labels:size(1) ~= n then error("metrics: " .. n .. " logits rows but " .. labels:size(1) .. " labels", 2) end
  local lab = label_index(labels):to(logits:device())
  local correct = logits:argmax(2):count_equal(lab)
  if next(self.k) then
    -- the label is among the K largest (ties by lower index) iff it is in topk(K)'s indices
    local kmax = 0
    for _, kk in pairs(self.k) do kmax = math.max(kmax, math.min(kk, k)) end
    local _, top = logits:topk(kmax, 2)
    local col = lab:reshape(n, 1)
    for c, kk in pairs(self.k) do
      self.topk[c] = self.topk[c] + top:narrow(2, 1, math.min(kk, k)):count_equal(col)
    end
  end
  self.correct = self.correct + correct
  self.count = self.count + n
  if loss ~= nil then
    if T.is_tensor(loss) then loss = loss:item() end
    self.loss_sum = self.loss_sum + loss * n
    self.loss_n = self.loss_n + n
  end
  return correct
end

--- {name = value} for every requested metric.
function M:eval()
  local r = {}
  for _, name in ipairs(self.names) do
    if name == "accuracy" then r.accuracy = self.count > 0 and self.correct / self.count or 0
    elseif name == "loss" then r.loss = self.loss_n > 0 and self.loss_sum / self.loss_n or nil
    else r[name] = self.count > 0 and self.topk[name] / self.count or 0 end
  end
  r.samples = self.count
  return r
end

return M
