-- eval.lua — evaluate a checkpoint on a dataset.
--   luajit scripts/eval.lua --net lenet5 --ckpt FILE --dataset mnist --data DIR [--batch N]
-- Ends with one JSON line:
--   {"accuracy":..,"loss":..,"samples":..,"param_not_load":[..],"seconds":..}
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "eval.lua",
  summary = "Load a checkpoint into a network and report accuracy and loss on a dataset's test split.",
  options = { "net", "device", { "ckpt", help = "checkpoint file (.ckpt, .safetensors or .pth; required)" },
    { "dataset", default = "mnist" }, "data",
    { "--split", "string", "test", "train | test", arg = "NAME" },
    "batch",
    { "--num-class", "int", 10, "classes of the network's head" },
    { "--limit", "int", nil, "evaluate only the first N samples" },
    { "--strict", "flag", false, "strict_load: every parameter must come from the checkpoint" },
    "rename", "dec_key", "dec_mode", "quiet" },
}

cli.main(spec, function(o)
  local spore = require("spore")
  local wf = require("spore.workflow")
  if not o.ckpt then cli.usage_error("--ckpt FILE is required") end
  if o.batch < 1 then cli.usage_error("--batch must be at least 1") end
  if o.limit and o.limit < 1 then cli.usage_error("--limit must be at least 1") end
  if o.split ~= "train" and o.split ~= "test" then cli.usage_error("--split must be train or test") end
  local ns = wf.net_spec(o.net, cli.usage_error)
  local t0 = spore.clock()
  local net = ns.build(o.num_class)
  local ds = wf.dataset(o.dataset, o.data, o.net, { split = o.split, batch = o.batch, shuffle = false,
    num_samples = o.limit }, cli.usage_error)
  local params = spore.load_checkpoint(o.ckpt, { dec_key = o.dec_key, dec_mode = o.dec_mode })
  local rules = o.rename and wf.load_rules(o.rename) or nil
  local pnl, cnl, report = spore.load_param_into_net(net, params, { strict_load = o.strict, rename = rules })
  -- a checkpoint of another network loads nothing that matters: refuse to report a number for it
  local trainable_missing = {}
  for _, p in ipairs(net:trainable_params()) do
    for _, n in ipairs(pnl) do if n == p.name then trainable_missing[#trainable_missing + 1] = n end end
  end
  if #trainable_missing == #net:trainable_params() then
    error(o.ckpt .. " holds none of the " .. o.net .. " parameters (" .. #cnl
      .. " checkpoint entries unmatched, e.g. '" .. tostring(cnl[1]) .. "'): is it a checkpoint of another network?", 0)
  end
  if #report.skipped > 0 then
    local e = report.skipped[1]
    error(o.ckpt .. ": tensor '" .. e.name .. "' " .. e.reason .. " (checkpoint " .. report.shape_str(e.ckpt_shape)
      .. ", net " .. report.shape_str(e.net_shape) .. ")", 0)
  end
  if not o.quiet then wf.print_report("eval.lua: load " .. o.ckpt, report) end
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits{ sparse = true, reduction = "mean" }
  local model = spore.Model(net, loss, nil, { metrics = { "accuracy", "loss" } })
  local m = model:eval(ds)
  local res = require("spore.json").ordered()
  res.accuracy = m.accuracy
  res.loss = m.loss
  res.samples = m.samples
  res.param_not_load = pnl
  res.ckpt_not_load = cnl
  res.seconds = spore.clock() - t0
  return res
end)
