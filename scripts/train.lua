-- train.lua — train a network from scratch and save checkpoints (network + optimizer).
--   luajit scripts/train.lua --net lenet5 --dataset fashion-mnist --epochs 1 --out DIR
-- The run directory (--out) receives the checkpoints, metrics.jsonl (spore.runlog: a record
-- every --log-every steps and one per epoch with the test metrics) and metrics.png (gnuplot).
-- Ends with one JSON line: {"accuracy":..,"loss":..,"checkpoint":..,"steps":..,"metrics":..,"plot":..,"seconds":..}
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "train.lua",
  summary = "Train a network from scratch with Momentum, saving MindSpore checkpoints, then evaluate it.",
  options = { "net", "device", "dataset", "data", "epochs", "steps", "batch", "lr", "momentum", "seed",
    { "out", default = "out/train" },
    { "--prefix", "string", nil, "checkpoint file prefix (default: NET_DATASET)", arg = "NAME" },
    { "--amp-level", "string", "O0", "MindSpore's amp_level: O0 (float32) or O2 (Conv2d/Dense in bfloat16 on the CPU)",
      arg = "LEVEL" },
    "log_every", "no_plot", "quiet", "allow_nonfinite" },
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
  local model = spore.Model(net, loss, opt, { metrics = { "accuracy", "loss" }, amp_level = o.amp_level })
  local ckpt = train.ModelCheckpoint(o.prefix or (o.net .. "_" .. o.dataset:gsub("%-", "_")), o.out,
    train.CheckpointConfig{ save_checkpoint_steps = ds:num_batches(), keep_checkpoint_max = 5,
      append_info = { "epoch_num", "step_num" } })
  local out_cbs, log = cli.training_output(o)
  local rl = require("spore.runlog").RunLog(o.out, { every = o.log_every, plot = not o.no_plot, print = log,
    eval = function() return model:eval(test) end,
    meta = { script = "train.lua", net = o.net, dataset = o.dataset, batch = o.batch, lr = o.lr, momentum = o.momentum,
      seed = o.seed, title = "train.lua " .. o.net .. " " .. o.dataset } })
  local cbs = { rl, ckpt }
  for _, cb in ipairs(out_cbs) do cbs[#cbs + 1] = cb end
  local ok, ctx = pcall(model.train, model, o.epochs, ds, { callbacks = cbs, steps = o.steps,
    allow_nonfinite = o.allow_nonfinite, progress = false })
  -- a NaN/Inf loss or parameter stops training (whatever --quiet says): one line, exit 1
  if not ok then error((tostring(ctx):gsub("allow_nonfinite = true", "--allow-nonfinite")), 0) end
  local m = rl.last_eval or model:eval(test)
  local res = require("spore.json").ordered()
  res.accuracy = m.accuracy
  res.loss = m.loss
  res.checkpoint = ckpt.latest
  res.steps = ctx.cur_step_num
  res.metrics = rl.path
  res.plot = rl.plot_path
  res.seconds = spore.clock() - t0
  return res
end)
