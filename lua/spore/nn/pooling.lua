--- spore.nn.MaxPool2d(kernel_size=1, stride=1, pad_mode="valid") and AvgPool2d(...) as
-- MindSpore; also MaxPool2d{kernel_size=, stride=, pad_mode=}. "same": output ceil(in/stride),
-- odd padding bottom/right; padded cells never win a max and are not counted in a mean.
-- One class per file (nn/max_pool2d.lua, nn/avg_pool2d.lua; shared geometry in
-- nn/pool_common.lua); this module gathers them.
return {
  MaxPool2d = require("spore.nn.max_pool2d"),
  AvgPool2d = require("spore.nn.avg_pool2d"),
}
