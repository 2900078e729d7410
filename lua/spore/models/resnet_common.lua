--- spore.models.resnet_common — the model zoo ResNet's layer makers, shared by ResNet
-- (models/resnet.lua) and ResidualBlock (models/residual_block.lua): conv(cin, cout, k,
-- stride, res_base) with He-normal (fan_out, relu) weights, "same" (or "pad" (k-1)/2 for
-- res_base); bn(c, res_base) with the zoo's eps and momentum.
local nn = require("spore.nn")

local M = {}
function M.conv_init() return nn.HeNormal(0, "fan_out", "relu") end
function M.conv(cin, cout, k, stride, res_base)
  if res_base then
    return nn.Conv2d(cin, cout, k, { stride = stride or 1, pad_mode = "pad", padding = math.floor((k - 1) / 2),
      weight_init = M.conv_init() })
  end
  return nn.Conv2d(cin, cout, k, { stride = stride or 1, pad_mode = "same", weight_init = M.conv_init() })
end
-- the zoo's _bn(channel, res_base)
function M.bn(c, res_base)
  if res_base then return nn.BatchNorm2d(c, { eps = 1e-5, momentum = 0.1 }) end
  return nn.BatchNorm2d(c, { eps = 1e-4, momentum = 0.9 })
end

return M
