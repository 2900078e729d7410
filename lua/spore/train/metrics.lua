--- spore.train.metrics — accumulating classification metrics.
--   local m = Metrics.new({"accuracy", "top5", "loss"})
--   m:update(logits, labels, batch_loss)  -- logits [N,K]; labels [N] ints or [N,K] one-hot
--   m:eval() → {accuracy=, top5=, loss=}
-- accuracy: mean of argmax(logits) == label (first maximum wins ties; one-hot
-- labels are argmax-ed). topK: the label's logit ranks among the K largest
-- (ties broken by index, as argmax). loss: the sample-weighted mean of the batch
-- means (equal to MindSpore's batch average when batches are equal-sized).
local T = require("spore.tensor")

local M = {}
M.__index = M

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

local function float_view(t)
  local dt = t:dtype()
  if dt ~= "float32" and dt ~= "float64" then t = t:to("float32") end
  if not t:is_contiguous() then t = t:contiguous() end
  return t
end

--- Class indices (0-based) per row of labels: [N] ints, or [N,K] one-hot (argmax).
local function label_index(labels, n)
  local out = {}
  if labels:dim() == 1 then
    local l = labels
    if not l:is_contiguous() then l = l:contiguous() end
    local dt = l:dtype()
    if dt == "float16" or dt == "bfloat16" or dt == "bool" then l = l:to("int64") end
    local p = l:ptr()
    for i = 0, n - 1 do out[i] = tonumber(p[i]) end
  else
    local l = float_view(labels)
    local k, p = l:size(2), l:ptr()
    for i = 0, n - 1 do
      local best, bi = p[i * k], 0
      for j = 1, k - 1 do if p[i * k + j] > best then best, bi = p[i * k + j], j end end
      out[i] = bi
    end
  end
  return out
end
M.label_index = label_index

--- Add one batch. loss (optional) is the batch's mean loss.
function M:update(logits, labels, loss)
  if logits:dim() ~= 2 then error("metrics: logits must be [N, classes], got " .. logits:dim() .. "-d", 2) end
  local n, k = logits:size(1), logits:size(2)
  if labels:size(1) ~= n then error("metrics: " .. n .. " logits rows but " .. labels:size(1) .. " labels", 2) end
  local lg = float_view(logits)
  local p = lg:ptr()
  local lab = label_index(labels, n)
  local correct = 0
  local ks = self.k
  for i = 0, n - 1 do
    local row = i * k
    local best, bi = p[row], 0
    for j = 1, k - 1 do if p[row + j] > best then best, bi = p[row + j], j end end
    local y = lab[i]
    if bi == y then correct = correct + 1 end
    if next(ks) then
      local v, rank = p[row + y], 0
      for j = 0, k - 1 do
        local w = p[row + j]
        if w > v or (w == v and j < y) then rank = rank + 1 end
      end
      for c, kk in pairs(ks) do if rank < kk then self.topk[c] = self.topk[c] + 1 end end
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
