--- spore.train.metrics — MindSpore's metrics (mindspore/train/metrics/*.py, 2.10).
-- Classes (each with clear(), update(...), eval(...)):
--   Accuracy(eval_type="classification"), Precision(eval_type), Recall(eval_type),
--   Fbeta(beta), F1(), ConfusionMatrix(num_classes, normalize="no_norm", threshold=0.5),
--   TopKCategoricalAccuracy(k), Top1CategoricalAccuracy(), Top5CategoricalAccuracy(), Loss().
--   Arguments go positionally, or as one table of MindSpore's keyword names
--   (ConfusionMatrix{num_classes = 3, normalize = "target"}).
-- update(y_pred, y): y_pred [N, C] scores, y [N] class ids or [N, C] one-hot (argmax-ed when
-- it is one-hot, as _check_onehot_data). Loss:update(loss) takes a batch's loss.
-- Precision/Recall/Fbeta eval(average=false) → a Lua array of per-class values, or their
-- mean with average = true: TP / (positives + eps), eps = DBL_MIN, as MindSpore.
-- Loss: the mean of the batch losses (per batch, not per sample), as MindSpore.
-- Tensor inputs: the argmax / topk run in the engine (first maximum wins ties, as numpy's
-- argmax; TopK ties go to the lower index, where MindSpore's unstable argsort may pick either),
-- so only N numbers per batch reach Lua; Lua tables work too.
--
-- The aggregate that Model uses: Metrics.new(spec) where spec is MindSpore's set
-- ({accuracy = true}), a dict (name → metric object, or name → metric name), or a list of
-- names ({"accuracy", "loss"}). Result keys are the names as given (`acc` stays `acc`).
-- Names: MindSpore's factory names (accuracy, acc, precision, recall, F1, top_1_accuracy,
-- top_5_accuracy, loss) plus spore's topK ("top5"); metrics MindSpore names that need
-- arguments (topk, confusion_matrix) must be given as objects; others are refused by name.
--   m:update(logits, labels, batch_loss); m:eval() → {name = value, ...}
local T = require("spore.tensor")
local class = require("spore.class")
local opts = require("spore.opts")

local M = class("Metrics")

local DBL_MIN = 2.2250738585072014e-308

local function to_host_flat(t)
  if T.is_tensor(t) then return t:flat() end
  if type(t) == "table" then
    local out = {}
    local function walk(v) if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end end
    walk(t)
    return out
  end
  error("metrics: expected a Tensor or a table, got " .. type(t), 3)
end

-- shape of a tensor or nested table
local function shape_of(t)
  if T.is_tensor(t) then return t:shape() end
  local s, v = {}, t
  while type(v) == "table" do s[#s + 1] = #v; v = v[1] end
  return s
end

-- {pred = flat scores, y = flat labels, n, c, ydim}; one-hot y (0/1 rows summing to 1) → indices
local function inputs(who, y_pred, y)
  local ps, ys = shape_of(y_pred), shape_of(y)
  local p, l = to_host_flat(y_pred), to_host_flat(y)
  if #ps == #ys and #ys > 1 then
    local n, c = ys[1], #l / ys[1]
    local onehot = true
    for i = 0, n - 1 do
      local s = 0
      for j = 1, c do
        local v = l[i * c + j]
        if v ~= 0 and v ~= 1 then onehot = false; break end
        s = s + v
      end
      if not onehot or s ~= 1 then onehot = false; break end
    end
    if onehot then
      local idx = {}
      for i = 0, n - 1 do for j = 1, c do if l[i * c + j] == 1 then idx[i + 1] = j - 1; break end end end
      l, ys = idx, { n }
    end
  end
  return p, l, ps, ys
end

-- argmax per row (first maximum), 0-based
local function argmax_rows(p, n, c)
  local out = {}
  for i = 0, n - 1 do
    local best, bv = 0, p[i * c + 1]
    for j = 2, c do
      local v = p[i * c + j]
      if v > bv then best, bv = j - 1, v end
    end
    out[i + 1] = best
  end
  return out
end

-- argmax per row and the class-id labels, both as Lua arrays (0-based ids): the argmax runs in
-- the engine for a tensor (first maximum wins, as numpy's), so only N numbers reach Lua
local function preds_labels(who, y_pred, y)
  if T.is_tensor(y_pred) and T.is_tensor(y) and y_pred:dim() == 2 and y:dim() == 1 then
    local ps = y_pred:shape()
    if y:size(1) ~= ps[1] then
      error(who .. ".update: the true value (inputs[1]) must be [N] class ids or [N, C] one-hot matching " ..
        ps[1] .. " predictions", 3)
    end
    local dev = y_pred:device()
    local yp = dev ~= "cpu" and y_pred:to("cpu") or y_pred
    local yy = y:device() ~= "cpu" and y:to("cpu") or y
    return yp:argmax(2):flat(), yy:flat(), ps
  end
  local p, l, ps, ys = inputs(who, y_pred, y)
  if #ps ~= 2 then error(who .. ".update: the predicted value (inputs[0]) must be [N, C], got " .. #ps .. "-d", 3) end
  if #ys ~= 1 or ys[1] ~= ps[1] then
    error(who .. ".update: the true value (inputs[1]) must be [N] class ids or [N, C] one-hot matching " ..
      ps[1] .. " predictions", 3)
  end
  return argmax_rows(p, ps[1], ps[2]), l, ps
end

local function check_classification(who, ps, ys)
  if #ps ~= 2 then error(who .. ".update: the predicted value (inputs[0]) must be [N, C], got " .. #ps .. "-d", 4) end
  if #ys ~= 1 or ys[1] ~= ps[1] then
    error(who .. ".update: the true value (inputs[1]) must be [N] class ids or [N, C] one-hot matching " ..
      ps[1] .. " predictions", 4)
  end
end

local function eval_type_arg(who, a)
  local et = a
  if type(a) == "table" then et = opts.check(who, a, { "eval_type" }, nil, { eval_type = "string" }, 4).eval_type end
  et = et or "classification"
  if et == "multilabel" then error(who .. ": eval_type 'multilabel' is MindSpore's, but spore does not implement it", 4) end
  if et ~= "classification" then error(who .. ": eval_type must be 'classification' or 'multilabel', got " .. tostring(et), 4) end
  return et
end

---------------------------------------------------------------- Accuracy
local Accuracy = class("Accuracy")
M.Accuracy = Accuracy
function Accuracy:__init(eval_type) self.eval_type = eval_type_arg("Accuracy", eval_type); self:clear() end
function Accuracy:clear() self._correct_num, self._total_num = 0, 0 end
function Accuracy:update(y_pred, y)
  local am, l, ps = preds_labels("Accuracy", y_pred, y)
  for i = 1, ps[1] do if am[i] == l[i] then self._correct_num = self._correct_num + 1 end end
  self._total_num = self._total_num + ps[1]
end
function Accuracy:eval()
  if self._total_num == 0 then error("Accuracy: the number of samples is 0: nothing to evaluate", 2) end
  return self._correct_num / self._total_num
end

---------------------------------------------------------------- Precision / Recall / Fbeta
local function class_counts(self, who, y_pred, y)
  local am, l, ps = preds_labels(who, y_pred, y)
  local n, c = ps[1], ps[2]
  if self._class_num == 0 then
    self._class_num = c
    self._tp, self._pos, self._act = {}, {}, {}
    for j = 1, c do self._tp[j], self._pos[j], self._act[j] = 0, 0, 0 end
  elseif c ~= self._class_num then
    error(("%s.update: class number not match, last input predicted data contain %d classes, but current "
      .. "predicted data contain %d classes"):format(who, self._class_num, c), 3)
  end
  local ymax = -1
  for i = 1, n do if l[i] > ymax then ymax = l[i] end end
  if ymax + 1 > c then
    error(("%s.update: predicted value (input[0]) should have the same classes number as true value (input[1]), "
      .. "but got predicted value classes %d, true value classes %d"):format(who, c, ymax + 1), 3)
  end
  for i = 1, n do
    local yi, pi = l[i] + 1, am[i] + 1
    if yi < 1 or yi ~= math.floor(yi) then error(who .. ".update: labels must be non-negative class ids, got " .. l[i], 3) end
    self._pos[pi] = self._pos[pi] + 1
    self._act[yi] = self._act[yi] + 1
    if yi == pi then self._tp[yi] = self._tp[yi] + 1 end
  end
end

local function mean(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s / #t end
local function average_arg(who, average)
  if type(average) == "table" then
    average = opts.check(who .. ".eval", average, { "average" }, nil, { average = "boolean" }, 4).average
  end
  if average ~= nil and type(average) ~= "boolean" then error(who .. ".eval: average must be a boolean, got " .. type(average), 4) end
  return average == true
end

local function per_class(self, who, average, f)
  if self._class_num == 0 then
    error(("The '%s' can not be calculated, because the number of samples is 0"):format(who), 3)
  end
  average = average_arg(who, average)
  local r = {}
  for j = 1, self._class_num do r[j] = f(j) end
  if average then return mean(r) end
  return r
end

local Precision = class("Precision")
M.Precision = Precision
function Precision:__init(eval_type) self.eval_type = eval_type_arg("Precision", eval_type); self:clear() end
function Precision:clear() self._class_num = 0 end
function Precision:update(y_pred, y) class_counts(self, "Precision", y_pred, y) end
function Precision:eval(average)
  return per_class(self, "Precision", average, function(j) return self._tp[j] / (self._pos[j] + DBL_MIN) end)
end

local Recall = class("Recall")
M.Recall = Recall
function Recall:__init(eval_type) self.eval_type = eval_type_arg("Recall", eval_type); self:clear() end
function Recall:clear() self._class_num = 0 end
function Recall:update(y_pred, y) class_counts(self, "Recall", y_pred, y) end
function Recall:eval(average)
  return per_class(self, "Recall", average, function(j) return self._tp[j] / (self._act[j] + DBL_MIN) end)
end

local Fbeta = class("Fbeta")
M.Fbeta = Fbeta
function Fbeta:__init(beta)
  if type(beta) == "table" then beta = opts.check("Fbeta", beta, { "beta" }, nil, { beta = "number" }, 3).beta end
  if type(beta) ~= "number" or not (beta > 0) then
    error("Fbeta: the argument 'beta' must be greater than 0, but got " .. tostring(beta), 3)
  end
  self.beta = beta
  self:clear()
end
function Fbeta:clear() self._class_num = 0 end
function Fbeta:update(y_pred, y) class_counts(self, "Fbeta", y_pred, y) end
function Fbeta:eval(average)
  local b2 = self.beta ^ 2
  return per_class(self, "Fbeta", average, function(j)
    return (1 + b2) * self._tp[j] / (b2 * self._act[j] + self._pos[j] + DBL_MIN)
  end)
end

local F1 = class("F1", Fbeta)
M.F1 = F1
function F1:__init(o)
  if o ~= nil then opts.check("F1", o, {}, nil, nil, 3) end
  Fbeta.__init(self, 1.0)
end

---------------------------------------------------------------- TopK
local TopK = class("TopKCategoricalAccuracy")
M.TopKCategoricalAccuracy = TopK
function TopK:__init(k)
  if type(k) == "table" then k = opts.check("TopKCategoricalAccuracy", k, { "k" }, nil, { k = "integer" }, 3).k end
  if type(k) ~= "number" or k ~= math.floor(k) then
    error("TopKCategoricalAccuracy: the type of the argument 'k' should be int, but got " .. type(k), 3)
  end
  if k < 1 then error("TopKCategoricalAccuracy: the argument 'k' must be at least 1, but got " .. k, 3) end
  self.k = k
  self:clear()
end
function TopK:clear() self._correct_num, self._samples_num = 0, 0 end
function TopK:update(y_pred, y)
  if T.is_tensor(y_pred) and T.is_tensor(y) and y_pred:dim() == 2 and y:dim() == 1 and y:size(1) == y_pred:size(1) then
    -- in the engine: the label is among topk(k)'s indices (ties: lower index first)
    local n, c = y_pred:size(1), y_pred:size(2)
    local yp = y_pred:device() ~= "cpu" and y_pred:to("cpu") or y_pred
    local lab = (y:device() ~= "cpu" and y:to("cpu") or y):reshape(n, 1)
    local _, top = yp:topk(math.min(self.k, c), 2)
    self._correct_num = self._correct_num + top:count_equal(lab)
    self._samples_num = self._samples_num + n
    return
  end
  local p, l, ps, ys = inputs("TopKCategoricalAccuracy", y_pred, y)
  check_classification("TopKCategoricalAccuracy", ps, ys)
  local n, c = ps[1], ps[2]
  for i = 0, n - 1 do
    -- the label is among the k largest: fewer than k scores beat it (ties: lower index first)
    local lab = l[i + 1]
    local v = p[i * c + lab + 1]
    local rank = 0
    if v ~= nil then
      for j = 1, c do
        local s = p[i * c + j]
        if s > v or (s == v and j - 1 < lab) then rank = rank + 1 end
      end
      if rank < self.k then self._correct_num = self._correct_num + 1 end
    end
  end
  self._samples_num = self._samples_num + n
end
function TopK:eval()
  if self._samples_num == 0 then
    error("The 'TopKCategoricalAccuracy' can not be calculated, because the number of samples is 0", 2)
  end
  return self._correct_num / self._samples_num
end
local Top1 = class("Top1CategoricalAccuracy", TopK)
M.Top1CategoricalAccuracy = Top1
local function no_args(who, ...)
  if select("#", ...) > 0 and (...) ~= nil then
    if type((...)) == "table" then require("spore.opts").check(who, (...), {}, nil, nil, 5) end
    error(who .. "() takes no arguments", 4)
  end
end
M.no_args = no_args
function Top1:__init(...) no_args("Top1CategoricalAccuracy", ...); TopK.__init(self, 1) end
local Top5 = class("Top5CategoricalAccuracy", TopK)
M.Top5CategoricalAccuracy = Top5
function Top5:__init(...) no_args("Top5CategoricalAccuracy", ...); TopK.__init(self, 5) end

---------------------------------------------------------------- ConfusionMatrix
local CM = class("ConfusionMatrix")
M.ConfusionMatrix = CM
function CM:__init(num_classes, normalize, threshold)
  if type(num_classes) == "table" then
    local o = opts.check("ConfusionMatrix", num_classes, { "num_classes", "normalize", "threshold" }, nil,
      { num_classes = "integer", normalize = "string", threshold = "number" }, 3)
    num_classes, normalize, threshold = o.num_classes, o.normalize, o.threshold
  end
  if type(num_classes) ~= "number" or num_classes ~= math.floor(num_classes) or num_classes < 1 then
    error("ConfusionMatrix: num_classes must be a positive integer, got " .. tostring(num_classes), 3)
  end
  normalize = normalize or "no_norm"
  local okn = { target = true, prediction = true, all = true, no_norm = true }
  if not okn[normalize] then
    error("ConfusionMatrix: the argument 'normalize' must be in ['all', 'prediction', 'target', 'no_norm'], but got "
      .. tostring(normalize), 3)
  end
  threshold = threshold == nil and 0.5 or threshold
  if type(threshold) ~= "number" then error("ConfusionMatrix: threshold must be a float, got " .. type(threshold), 3) end
  self.num_classes, self.normalize, self.threshold = num_classes, normalize, threshold
  self:clear()
end
function CM:clear()
  self.confusion_matrix = {}
  for i = 1, self.num_classes do
    self.confusion_matrix[i] = {}
    for j = 1, self.num_classes do self.confusion_matrix[i][j] = 0 end
  end
  self._is_update = false
end
function CM:update(y_pred, y)
  local ps, ys = shape_of(y_pred), shape_of(y)
  local p, l = to_host_flat(y_pred), to_host_flat(y)
  local pred
  if #ps == #ys + 1 then
    -- argmax over axis 1 (the class axis): [N, C, ...] → [N, ...]
    local n, c = ps[1], ps[2]
    local inner = #p / (n * c)
    pred = {}
    for i = 0, n - 1 do
      for r = 0, inner - 1 do
        local best, bv = 0, p[i * c * inner + r + 1]
        for j = 1, c - 1 do
          local v = p[i * c * inner + j * inner + r + 1]
          if v > bv then best, bv = j, v end
        end
        pred[i * inner + r + 1] = best
      end
    end
  elseif #ps == #ys then
    local is_float = T.is_tensor(y_pred) and y_pred:dtype():match("float") ~= nil
    if not T.is_tensor(y_pred) then
      for _, v in ipairs(p) do if v ~= math.floor(v) then is_float = true; break end end
    end
    pred = {}
    for i, v in ipairs(p) do pred[i] = is_float and (v >= self.threshold and 1 or 0) or v end
  else
    error(("ConfusionMatrix.update: predicted value (input[0]) and true value (input[1]) should have same dimensions, "
      .. "or the dimension of predicted value equals the dimension of true value add 1, but got %d and %d"):format(#ps, #ys), 2)
  end
  if #pred ~= #l then error("ConfusionMatrix.update: " .. #pred .. " predictions but " .. #l .. " labels", 2) end
  local nc = self.num_classes
  for i = 1, #l do
    local a, b = l[i], pred[i]
    if a < 0 or a >= nc or b < 0 or b >= nc or a ~= math.floor(a) or b ~= math.floor(b) then
      error(("ConfusionMatrix.update: class %s (label) / %s (prediction) out of range for num_classes %d"):format(
        tostring(a), tostring(b), nc), 2)
    end
    self.confusion_matrix[a + 1][b + 1] = self.confusion_matrix[a + 1][b + 1] + 1
  end
  self._is_update = true
end
function CM:eval()
  if not self._is_update then error("Please call the 'update' method before calling 'eval' method.", 2) end
  local nc, cm = self.num_classes, self.confusion_matrix
  local out = {}
  local rows, cols, all = {}, {}, 0
  for i = 1, nc do
    rows[i] = 0
    for j = 1, nc do rows[i] = rows[i] + cm[i][j]; cols[j] = (cols[j] or 0) + cm[i][j]; all = all + cm[i][j] end
  end
  for i = 1, nc do
    out[i] = {}
    for j = 1, nc do
      local v = cm[i][j]
      local d = self.normalize == "target" and rows[i] or self.normalize == "prediction" and cols[j]
        or self.normalize == "all" and all or nil
      if d then v = d ~= 0 and v / d or 0 end -- numpy's NaN (0/0) becomes 0, as MindSpore
      out[i][j] = v
    end
  end
  return out
end

---------------------------------------------------------------- Loss
local Loss = class("Loss")
M.Loss = Loss
function Loss:__init(...) no_args("Loss", ...); self:clear() end
function Loss:clear() self._sum_loss, self._total_num = 0, 0 end
--- loss: a number, or a 0-d / 1-d tensor (its mean), one batch.
function Loss:update(loss)
  if T.is_tensor(loss) then
    if loss:dim() > 1 then error("Loss.update: the dimension of the loss must be 0 or 1, got " .. loss:dim(), 2) end
    local s, f = 0, loss:flat()
    for _, v in ipairs(f) do s = s + v end
    loss = s / #f
  end
  if type(loss) ~= "number" then error("Loss.update: expected a number or a tensor, got " .. type(loss), 2) end
  self._sum_loss = self._sum_loss + loss
  self._total_num = self._total_num + 1
end
function Loss:eval()
  if self._total_num == 0 then
    error("The 'Loss' can not be calculated, because the number of samples is 0", 2)
  end
  return self._sum_loss / self._total_num
end

---------------------------------------------------------------- names
local FACTORY = {
  accuracy = Accuracy, acc = Accuracy, precision = Precision, recall = Recall, F1 = F1,
  top_1_accuracy = Top1, top_5_accuracy = Top5, loss = Loss,
  -- spore's own names (kept from earlier versions)
  Accuracy = Accuracy, Loss = Loss, top1 = Top1, Top5CategoricalAccuracy = Top5,
}
local NEEDS_ARGS = { topk = "TopKCategoricalAccuracy(k)", confusion_matrix = "ConfusionMatrix(num_classes)" }
local REFUSED = { dice = true, roc = true, auc = true, bleu_score = true, cosine_similarity = true,
  occlusion_sensitivity = true, hausdorff_distance = true, mae = true, mse = true, mean_surface_distance = true,
  root_mean_square_distance = true, perplexity = true, confusion_matrix_metric = true }

local function is_metric(v) return type(v) == "table" and type(v.update) == "function" and type(v.eval) == "function" end
M.is_metric = is_metric

--- A new metric object for a name (MindSpore's get_metric_fn), or raises naming the name.
function M.get_metric_fn(name, level)
  level = (level or 2) + 1
  if type(name) ~= "string" then error("metrics: a metric name must be a string, got " .. type(name), level) end
  if FACTORY[name] then return FACTORY[name]() end
  local k = name:match("^top(%d+)$")
  if k then return TopK(tonumber(k)) end
  if NEEDS_ARGS[name] then
    error(("metric '%s' needs arguments: give it as an object, {%s = %s}"):format(name, name, NEEDS_ARGS[name]), level)
  end
  if REFUSED[name] then error("metric '" .. name .. "' is MindSpore's, but spore does not implement it", level) end
  local known = { top5 = true }
  for n, cls in pairs(FACTORY) do if n:match("^[a-z]") or n == "F1" then known[n] = true end end
  for n in pairs(NEEDS_ARGS) do known[n] = true end
  local near = opts.nearest(name, known)
  error(("unknown metric '%s'%s"):format(name, near and (" (did you mean '" .. near .. "'?)") or ""), level)
end

--- Canonical check of a metric name (raises for an unknown one); returns the name.
function M.canonical(name)
  M.get_metric_fn(name, 2)
  return name
end

--- Normalise Model's `metrics` (list, set or dict) to an ordered list of {name, metric}.
function M.resolve(spec, level)
  level = (level or 2) + 1
  if spec == nil then return {} end
  if type(spec) == "string" then spec = { spec } end
  if type(spec) ~= "table" then error("metrics must be a list, a set or a dict, got " .. type(spec), level) end
  local out = {}
  if spec[1] ~= nil then
    for _, n in ipairs(spec) do
      if is_metric(n) then error("metrics: a metric object needs a name: give a dict {name = object}", level) end
      out[#out + 1] = { n, M.get_metric_fn(n, level) }
    end
    return out
  end
  local names = {}
  for k in pairs(spec) do
    if type(k) ~= "string" then error("metrics: dict keys must be names (strings), got " .. type(k), level) end
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = spec[k]
    local m
    if v == true then m = M.get_metric_fn(k, level)
    elseif type(v) == "string" then m = M.get_metric_fn(v, level)
    elseif is_metric(v) then m = v
    else
      error(("metrics: '%s' must map to true (a set), a metric name or a metric object, got %s"):format(k, type(v)), level)
    end
    out[#out + 1] = { k, m }
  end
  return out
end

--- Metrics.new(spec): the aggregate Model uses (see the header).
function M.new(spec)
  local self = setmetatable({ list = M.resolve(spec or { "accuracy" }, 2) }, M)
  self.names = {}
  for i, e in ipairs(self.list) do self.names[i] = e[1] end
  self:clear()
  return self
end

function M:clear()
  for _, e in ipairs(self.list) do e[2]:clear() end
  self.count = 0
end

--- true when one of the metrics is a Loss (it needs the loss function's output)
function M:wants(what)
  for _, e in ipairs(self.list) do
    if what == "loss" and getmetatable(e[2]) == Loss then return true end
    if e[1] == what then return true end
  end
  return false
end

--- Class indices (0-based, int64 tensor [N]) per row of labels: [N] class ids, or
-- [N,K] one-hot / probabilities (argmax over the classes).
function M.label_index(labels)
  if labels:dim() == 1 then return labels end
  if labels:dim() ~= 2 then error("metrics: labels must be [N] class ids or [N, classes], got " .. labels:dim() .. "-d", 3) end
  return labels:argmax(2)
end

--- Add one batch: logits [N, C], labels, loss (the batch's loss, for Loss metrics).
function M:update(logits, labels, loss)
  if logits:dim() ~= 2 then error("metrics: logits must be [N, classes], got " .. logits:dim() .. "-d", 2) end
  local n = logits:size(1)
  if labels:size(1) ~= n then error("metrics: " .. n .. " logits rows but " .. labels:size(1) .. " labels", 2) end
  -- metrics accumulate on the host, as MindSpore's (asnumpy)
  if logits:device() ~= "cpu" then logits = logits:to("cpu") end
  if labels:device() ~= "cpu" then labels = labels:to("cpu") end
  for _, e in ipairs(self.list) do
    if getmetatable(e[2]) == Loss then
      if loss ~= nil then e[2]:update(loss) end
    else
      e[2]:update(logits, labels)
    end
  end
  self.count = self.count + n
end

--- {name = value} for every metric (MindSpore's _get_metrics: each metric's eval()).
function M:eval()
  local r = {}
  for _, e in ipairs(self.list) do r[e[1]] = e[2]:eval() end
  return r
end

return M
