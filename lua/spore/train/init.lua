--- spore.train — Model (train / eval / predict), metrics and callbacks.
--   local train = require("spore").train
--   spore.Model(net, loss, opt, {metrics = {"accuracy", "top5", "loss"}})
--   train.LossMonitor(per_print_times), train.TimeMonitor(), train.ProgressBar(),
--   train.ModelCheckpoint(prefix, directory, train.CheckpointConfig{...})
local cbs = require("spore.train.callbacks")
local M = {}
M.Model = require("spore.train.model")
M.Metrics = require("spore.train.metrics")
M.callbacks = cbs
M.LossMonitor, M.TimeMonitor, M.ProgressBar = cbs.LossMonitor, cbs.TimeMonitor, cbs.ProgressBar
M.ModelCheckpoint, M.CheckpointConfig = cbs.ModelCheckpoint, cbs.CheckpointConfig
M.format_loss = cbs.format_loss
M.loss_scale = require("spore.train.loss_scale")
M.FixedLossScaleManager = M.loss_scale.FixedLossScaleManager
M.DynamicLossScaleManager = M.loss_scale.DynamicLossScaleManager
return M
