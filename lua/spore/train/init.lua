--- spore.train — Model (train / fit / eval / predict), metrics and callbacks, under
-- MindSpore 2.10's names (mindspore.train).
--   local train = require("spore").train
--   spore.Model(net, loss, opt, {metrics = {"accuracy", "loss"}})
--   callbacks: train.LossMonitor(per_print_times), train.TimeMonitor(data_size, data_time),
--   train.ProgressBar(), train.ModelCheckpoint(prefix, directory, train.CheckpointConfig{...}),
--   train.EarlyStopping{...}, train.ReduceLROnPlateau{...}, train.LearningRateScheduler(fn),
--   train.History(), train.LambdaCallback{...}
--   metrics: train.Accuracy(), train.Precision(), train.Recall(), train.F1(), train.Fbeta(beta),
--   train.ConfusionMatrix(num_classes, normalize, threshold), train.TopKCategoricalAccuracy(k),
--   train.Top1CategoricalAccuracy(), train.Top5CategoricalAccuracy(), train.Loss(),
--   train.get_metric_fn(name)
local cbs = require("spore.train.callbacks")
local Metrics = require("spore.train.metrics")
local M = {}
M.Model = require("spore.train.model")
M.Metrics = Metrics
M.callbacks = cbs
for _, k in ipairs({ "LossMonitor", "TimeMonitor", "ProgressBar", "ModelCheckpoint", "CheckpointConfig", "EarlyStopping",
  "ReduceLROnPlateau", "LearningRateScheduler", "History", "LambdaCallback" }) do
  M[k] = cbs[k]
end
for _, k in ipairs({ "Accuracy", "Precision", "Recall", "F1", "Fbeta", "ConfusionMatrix", "TopKCategoricalAccuracy",
  "Top1CategoricalAccuracy", "Top5CategoricalAccuracy", "Loss", "get_metric_fn" }) do
  M[k] = Metrics[k]
end
M.format_loss = cbs.format_loss
M.loss_scale = require("spore.train.loss_scale")
M.amp = require("spore.train.amp")
M.auto_mixed_precision = M.amp.auto_mixed_precision
M.FixedLossScaleManager = M.loss_scale.FixedLossScaleManager
M.DynamicLossScaleManager = M.loss_scale.DynamicLossScaleManager
return M
