--- spore.models — lenet5{num_class, num_channel}, resnet50{class_num}, resnet18{}, resnet34{}.
local resnet = require("spore.models.resnet")
return {
  lenet5 = require("spore.models.lenet"),
  resnet50 = resnet.resnet50, resnet18 = resnet.resnet18, resnet34 = resnet.resnet34,
  ResNet = resnet.ResNet, ResidualBlock = resnet.ResidualBlock,
}
