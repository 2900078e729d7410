--- spore.optim — Momentum(params, lr, momentum, opts), SGD(params, lr, opts), Adam(params, lr, opts).
return {
  Momentum = require("spore.optim.momentum"),
  SGD = require("spore.optim.sgd"),
  Adam = require("spore.optim.adam"),
  Optimizer = require("spore.optim.optimizer").Optimizer,
}
