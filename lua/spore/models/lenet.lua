--- spore.models.lenet5{num_class=10, num_channel=1} — the MindSpore tutorial LeNet5:
-- conv1 (5×5 valid, no bias) → ReLU → MaxPool 2/2 → conv2 → ReLU → MaxPool → Flatten →
-- fc1 400→120 → ReLU → fc2 120→84 → ReLU → fc3 84→num_class. Dense weights Normal(0.02).
-- Parameters: conv1.weight conv2.weight fc1.weight fc1.bias fc2.weight fc2.bias fc3.weight fc3.bias.
local nn = require("spore.nn")
local chain = require("spore.nn.chain")

local LeNet5 = nn.class("LeNet5")

function LeNet5:__init(opts)
  opts = require("spore.opts").check("spore.models.lenet5", opts, { "num_class", "num_classes", "class_num",
    "num_channel" }, { include_top = "the network always ends with fc3 (include_top = True)" }, nil, 4)
  if ((opts.num_class and 1 or 0) + (opts.num_classes and 1 or 0) + (opts.class_num and 1 or 0)) > 1 then
    error("spore.models.lenet5: give the class count once (num_class, num_classes or class_num)", 2)
  end
  local nc, ch = opts.num_class or opts.num_classes or opts.class_num or 10, opts.num_channel or 1
  if type(nc) ~= "number" or nc < 1 or nc ~= math.floor(nc) then
    error("lenet5: num_class must be a positive integer, got " .. tostring(nc), 2)
  end
  self:register_module("conv1", nn.Conv2d(ch, 6, 5, { pad_mode = "valid" }))
  self:register_module("conv2", nn.Conv2d(6, 16, 5, { pad_mode = "valid" }))
  self:register_module("fc1", nn.Dense(16 * 5 * 5, 120, { weight_init = nn.Normal(0.02) }))
  self:register_module("fc2", nn.Dense(120, 84, { weight_init = nn.Normal(0.02) }))
  self:register_module("fc3", nn.Dense(84, nc, { weight_init = nn.Normal(0.02) }))
  self._ins = {}
end

function LeNet5:_list()
  -- rebuilt each call so that net:replace("fc3", ...) takes effect
  local l = self._l or { nil, nn.ReLU(), nn.MaxPool2d(2, 2), nil, nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
    nil, nn.ReLU(), nil, nn.ReLU(), nil }
  self._l = l
  l[1], l[4], l[8], l[10], l[12] = self.conv1, self.conv2, self.fc1, self.fc2, self.fc3
  return l
end
function LeNet5:forward(x) self.output = chain.forward(self:_list(), self._ins, x); return self.output end
function LeNet5:backward(_, g, need_input_grad) return chain.backward(self:_list(), self._ins, g, need_input_grad) end

return function(opts) return LeNet5(opts) end
