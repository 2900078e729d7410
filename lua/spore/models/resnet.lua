--- spore.models.resnet50{class_num=10} / resnet18{} / resnet34{} — the MindSpore model zoo
-- ResNet (official/cv/ResNet/src/resnet.py), names, paddings, BatchNorm settings and
-- initialisers as there:
--   resnet50: conv1 7×7/2 "same" → bn1 → ReLU → maxpool 3×3/2 "same" → layer1..4 of
--     bottleneck ResidualBlocks (conv1 1×1, conv2 3×3 carrying the stride, conv3 1×1, bn1..3;
--     all convs "same"; BN eps 1e-4, momentum 0.9) → global mean → end_point Dense.
--   resnet18/34 (res_base): conv1 7×7/2 "pad" 3 → bn1 (eps 1e-5, momentum 0.1) → ReLU →
--     1-pixel pad + maxpool 3×3/2 "valid" → ResidualBlockBase blocks (conv1 3×3 carrying the
--     stride, bn1d, conv2 3×3, bn2d; convs "pad" 1; bn1d/bn2d eps 1e-4, momentum 0.9).
-- down_sample_layer = [1×1 conv with the stride, BN] when stride ≠ 1 or channels change
-- (res_base: that BN is eps 1e-5, momentum 0.1). Conv weights He-normal (fan_out, relu),
-- end_point He-uniform (a = √5) with a zero bias.
-- The network class is here (with the resnet18/34/50 makers); the block is in
-- models/residual_block.lua, the shared layer makers in models/resnet_common.lua.
local nn = require("spore.nn")
local chain = require("spore.nn.chain")
local R = require("spore.models.resnet_common")
local Block = require("spore.models.residual_block")

local M = {}
M.ResidualBlock = Block

---------------------------------------------------------------- network
local ResNet = nn.class("ResNet")
M.ResNet = ResNet
--- ResNet(layer_nums, in_channels, out_channels, strides, class_num, bottleneck)
function ResNet:__init(layer_nums, in_ch, out_ch, strides, class_num, bottleneck)
  local rb = bottleneck == false -- the zoo's res_base (resnet18/34)
  self:register_module("conv1", rb and nn.Conv2d(3, 64, 7, { stride = 2, pad_mode = "pad", padding = 3,
    weight_init = R.conv_init() }) or R.conv(3, 64, 7, 2))
  self:register_module("bn1", R.bn(64, rb))
  self:register_module("relu", nn.ReLU())
  -- res_base pads with zeros before a "valid" pool; after ReLU that equals a padded max
  self:register_module("maxpool", rb and nn.MaxPool2d{ kernel_size = 3, stride = 2, pad_mode = "pad", padding = 1 }
    or nn.MaxPool2d(3, 2, "same"))
  for i = 1, 4 do
    local layer = nn.SequentialCell({})
    for j = 1, layer_nums[i] do
      layer:append(Block(j == 1 and in_ch[i] or out_ch[i], out_ch[i], j == 1 and strides[i] or 1, bottleneck))
    end
    self:register_module("layer" .. i, layer)
  end
  self:register_module("mean", nn.GlobalAvgPool())
  self:register_module("end_point", nn.Dense(out_ch[4], class_num,
    { weight_init = nn.HeUniform(math.sqrt(5)), bias_init = "zeros" }))
  self._ins = {}
end
function ResNet:_list()
  return { self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4,
           self.mean, self.end_point }
end
function ResNet:forward(x) self.output = chain.forward(self:_list(), self._ins, x); return self.output end
function ResNet:backward(_, g, need_input_grad) return chain.backward(self:_list(), self._ins, g, need_input_grad) end

-- The class count: MindSpore's model zoo says class_num; num_classes and num_class
-- (torchvision's and the LeNet tutorial's spellings) are accepted too.
local function classes(opts, name)
  require("spore.opts").check("spore.models." .. name, opts, { "class_num", "num_classes", "num_class" }, nil, nil, 4)
  local given = (opts.class_num and 1 or 0) + (opts.num_classes and 1 or 0) + (opts.num_class and 1 or 0)
  if given > 1 then
    error(("spore.models.%s: give the class count once (class_num, num_classes or num_class)"):format(name), 3)
  end
  local n = opts.class_num or opts.num_classes or opts.num_class or 10
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    error("resnet: class_num must be a positive integer, got " .. tostring(n), 3)
  end
  return n
end

function M.resnet50(opts)
  opts = opts or {}
  return ResNet({ 3, 4, 6, 3 }, { 64, 256, 512, 1024 }, { 256, 512, 1024, 2048 }, { 1, 2, 2, 2 },
    classes(opts, "resnet50"), true)
end
function M.resnet18(opts)
  opts = opts or {}
  return ResNet({ 2, 2, 2, 2 }, { 64, 64, 128, 256 }, { 64, 128, 256, 512 }, { 1, 2, 2, 2 }, classes(opts, "resnet18"), false)
end
function M.resnet34(opts)
  opts = opts or {}
  return ResNet({ 3, 4, 6, 3 }, { 64, 64, 128, 256 }, { 64, 128, 256, 512 }, { 1, 2, 2, 2 }, classes(opts, "resnet34"), false)
end
return M
