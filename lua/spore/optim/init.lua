--- spore.optim — the optimizer classes: Momentum(params, lr, momentum, opts), SGD(params, lr,
-- opts), Adam(params, lr, opts), AdamWeightDecay(params, lr, opts) (each callable, and .new), their base class Optimizer, and
-- Flat, the flat training-state buckets they keep.
return {
  Momentum = require("spore.optim.momentum"),
  SGD = require("spore.optim.sgd"),
  Adam = require("spore.optim.adam"),
  AdamWeightDecay = require("spore.optim.adam_weight_decay"),
  Optimizer = require("spore.optim.optimizer"),
  Flat = require("spore.optim.flat"),
}
