-- train.lua — train a network from scratch and save checkpoints (network + optimizer).
--   luajit scripts/train.lua --net lenet5 --dataset fashion-mnist --epochs 1 --out DIR
-- Ends with one JSON line: {"accuracy":..,"loss":..,"checkpoint":..,"steps":..,"seconds":..}
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "train.lua",
  summary = "Train a network from scratch with Momentum, saving MindSpore checkpoints, then evaluate it.",
  options = { "net", "dataset", "data", "epochs", "steps", "batch", "lr", "momentum", "seed",
    { "out", default = "out/train" },
    { "--prefix", "string", nil, "checkpoint file prefix (default: NET_DATASET)" },
    "quiet", "allow_nonfinite" },
}

cli.main(spec, function(o)
  local spore = require("spore")
  local wf = require("spore.workflow")
  local train = spore.train
  if o.epochs < 1 then cli.usage_error("--epochs must be at least 1") end
  if o.batch < 1 then cli.usage_error("--batch must be at least 1") end
  if o.steps and o.steps < 1 then cli.usage_error("--steps must be at least 1") end
  if o.lr <= 0 then cli.usage_error("--lr must be positive") end
  local ns = wf.net_spec(o.net, cli.usage_error)
  local t0 = spore.clock()
  spore.manual_seed(o.seed)
  local ds = wf.dataset(o.dataset, o.data, o.net, { split = "train", batch = o.batch, shuffle = true, seed = o.seed,
    drop_remainder = true }, cli.usage_error)
  local test = wf.dataset(o.dataset, o.data, o.net, { split = "test", batch = 256, shuffle = false }, cli.usage_error)
  local net = ns.build(10)
  local opt = spore.optim.Momentum(net:trainable_params(), o.lr, o.momentum)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits{ sparse = true, reduction = "mean" }
  local model = spore.Model(net, loss, opt, { metrics = { "accuracy", "loss" } })
  local ckpt = train.ModelCheckpoint(o.prefix or (o.net .. "_" .. o.dataset:gsub("%-", "_")), o.out,
    train.CheckpointConfig{ save_checkpoint_steps = ds:num_batches(), keep_checkpoint_max = 5,
      append_info = { "epoch_num", "step_num" } })
  local cbs = { ckpt }
  if not o.quiet then cbs[#cbs + 1] = train.LossMonitor(200, { print = function(s) io.stderr:write(s, "\n") end }) end
  local ok, ctx = pcall(model.train, model, o.epochs, ds, { callbacks = cbs, steps = o.steps, allow_nonfinite = o.allow_nonfinite })
  -- a NaN/Inf loss or parameter stops training (whatever --quiet says): one line, exit 1
  if not ok then error((tostring(ctx):gsub("allow_nonfinite = true", "--allow-nonfinite")), 0) end
  local m = model:eval(test)
  local res = require("spore.json").ordered()
  res.accuracy = m.accuracy
  res.loss = m.loss
  res.checkpoint = ckpt.latest
  res.steps = ctx.cur_step_num
  res.seconds = spore.clock() - t0
  return res
end)
