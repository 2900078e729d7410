--- spore.zoo.CrossEntropySmooth(sparse=true, reduction="mean", smooth_factor=0.0, num_classes=1000)
-- — the MindSpore model zoo's loss (official/cv/ResNet/src/CrossEntropySmooth.py): sparse labels
-- become one-hot rows with on_value = 1 - smooth_factor and off_value = smooth_factor /
-- (num_classes - 1) (both float32, as the zoo's Tensors), then SoftmaxCrossEntropyWithLogits
-- with the reduction ("mean" divides by N). Dense labels (sparse=false) are used as they are.
-- Also CrossEntropySmooth{sparse=, reduction=, smooth_factor=, num_classes=}.
-- forward/backward as spore.nn.CrossEntropyLoss (one engine kernel each way).
local base = require("spore.nn.module")
local CE = require("spore.nn.cross_entropy_loss")
local f32 = require("spore.nn.learning_rate_schedule").f32
local opts_check = require("spore.opts").check

local CS = base.class("CrossEntropySmooth", CE)

function CS:__init(sparse, reduction, smooth_factor, num_classes)
  if type(sparse) == "table" then
    local o = opts_check("CrossEntropySmooth", sparse, { "sparse", "reduction", "smooth_factor", "num_classes" }, nil,
      { sparse = "boolean", reduction = "string", smooth_factor = "number", num_classes = "integer" }, 4)
    sparse, reduction, smooth_factor, num_classes = o.sparse, o.reduction, o.smooth_factor, o.num_classes
  end
  if sparse == nil then sparse = true end
  if type(sparse) ~= "boolean" then error("CrossEntropySmooth: sparse must be a boolean, got " .. type(sparse), 3) end
  self.sparse = sparse
  self.reduction = reduction or "mean"
  if self.reduction ~= "none" and self.reduction ~= "mean" and self.reduction ~= "sum" then
    error("CrossEntropySmooth: reduction must be 'none', 'mean' or 'sum', got '" .. tostring(self.reduction) .. "'", 3)
  end
  self.smooth_factor = smooth_factor or 0
  self.num_classes = num_classes or 1000
  if type(self.smooth_factor) ~= "number" then error("CrossEntropySmooth: smooth_factor must be a number", 3) end
  if type(self.num_classes) ~= "number" or self.num_classes < 2 or self.num_classes ~= math.floor(self.num_classes) then
    error("CrossEntropySmooth: num_classes must be an integer >= 2, got " .. tostring(self.num_classes), 3)
  end
  self.on_value = f32(1.0 - self.smooth_factor)
  self.off_value = f32(1.0 * self.smooth_factor / (self.num_classes - 1))
  self.label_smoothing, self.ignore_index = 0, -100 -- unused (CrossEntropyLoss fields)
end

function CS:__repr()
  return ("CrossEntropySmooth(sparse=%s, reduction=%s, smooth_factor=%g, num_classes=%d)"):format(
    tostring(self.sparse), self.reduction, self.smooth_factor, self.num_classes)
end

function CS:forward(logits, labels)
  if type(labels) == "table" and labels.shape then
    local float = labels:dtype():match("float") ~= nil
    if self.sparse and float then
      error("CrossEntropySmooth: sparse=true takes class indices (an integer Tensor [N]), got " .. labels:dtype(), 2)
    elseif not self.sparse and not float then
      error("CrossEntropySmooth: sparse=false takes label rows (a float Tensor [N, C]), got " .. labels:dtype(), 2)
    end
  end
  return CE.forward(self, logits, labels)
end

-- one-hot (on, off) rows: q = (on - off) [c == y] + off; dense rows as they are
function CS:_coeffs(sparse)
  if sparse then return self.on_value - self.off_value, self.off_value, nil, nil end
  return 1, 0, nil, nil
end
function CS:_weighted_mean() return false end

return CS
