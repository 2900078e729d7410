--- spore.nn — modules, losses, initializers (see module.lua for the protocol).
local base = require("spore.nn.module")
local act = require("spore.nn.activation")
local pool = require("spore.nn.pooling")
local loss = require("spore.nn.loss")

local nn = {
  Module = base.Module, Parameter = base.Parameter, class = base.class,
  Conv2d = require("spore.nn.conv"), Dense = require("spore.nn.dense"),
  BatchNorm2d = require("spore.nn.batchnorm"), SequentialCell = require("spore.nn.sequential"),
  ReLU = act.ReLU, Dropout = act.Dropout, Flatten = act.Flatten, GlobalAvgPool = act.GlobalAvgPool,
  MaxPool2d = pool.MaxPool2d, AvgPool2d = pool.AvgPool2d,
  SoftmaxCrossEntropyWithLogits = loss.SoftmaxCrossEntropyWithLogits, CrossEntropyLoss = loss.CrossEntropyLoss,
  softmax = loss.softmax,
  init = require("spore.nn.initializer"),
}
nn.Sequential = nn.SequentialCell
-- mindspore.nn's dynamic-lr functions and LearningRateSchedule classes, by their names
nn.dynamic_lr = require("spore.nn.dynamic_lr")
nn.learning_rate_schedule = require("spore.nn.learning_rate_schedule")
for _, k in ipairs({ "piecewise_constant_lr", "exponential_decay_lr", "natural_exp_decay_lr", "inverse_decay_lr",
  "cosine_decay_lr", "polynomial_decay_lr", "warmup_lr" }) do nn[k] = nn.dynamic_lr[k] end
for _, k in ipairs({ "ExponentialDecayLR", "NaturalExpDecayLR", "InverseDecayLR", "CosineDecayLR", "PolynomialDecayLR",
  "WarmUpLR" }) do nn[k] = nn.learning_rate_schedule[k] end
local I = nn.init
nn.Normal, nn.HeUniform, nn.HeNormal, nn.Uniform, nn.TruncatedNormal = I.Normal, I.HeUniform, I.HeNormal, I.Uniform, I.TruncatedNormal
return nn
