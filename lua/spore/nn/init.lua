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
local I = nn.init
nn.Normal, nn.HeUniform, nn.HeNormal, nn.Uniform, nn.TruncatedNormal = I.Normal, I.HeUniform, I.HeNormal, I.Uniform, I.TruncatedNormal
return nn
