--- spore.nn activations and shape layers: ReLU(), Dropout(keep_prob=0.5 | {p=}), Flatten(),
-- GlobalAvgPool() (mean over H, W → [N, C]). One class per file (nn/relu.lua, nn/dropout.lua,
-- nn/flatten.lua, nn/global_avg_pool.lua); this module gathers them.
return {
  ReLU = require("spore.nn.relu"),
  Dropout = require("spore.nn.dropout"),
  Flatten = require("spore.nn.flatten"),
  GlobalAvgPool = require("spore.nn.global_avg_pool"),
}
