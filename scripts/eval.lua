-- eval.lua — evaluate a checkpoint on a dataset.
--   luajit scripts/eval.lua --net lenet5 --ckpt FILE --dataset mnist --data DIR [--batch N]
--   luajit scripts/eval.lua --net resnet50 --ckpt FILE --data-folder DIR [--image-size N]
--     [--val-split F --seed S]   (the held-out part finetune.lua used: same F, same seed)
--     [--amp-level O2]           (bfloat16 on the CPU, as Model(..., {amp_level = "O2"}))
-- With --data-folder the class count is the checkpoint head's and must equal the folder's;
-- images go through the zoo's eval chain (--pipeline imagenet | cifar10).
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
    "rename", "dec_key", "dec_mode", "quiet",
    { "--data-folder", "string", nil, "evaluate on a folder of images, one subfolder per class (instead of --dataset)" },
    { "--val-split", "number", nil, "--data-folder: evaluate only the held-out fraction finetune.lua --val-split F used (with the same --seed)" },
    { "seed", help = "--val-split's seed (as given to finetune.lua)" },
    { "--image-size", "int", nil, "--data-folder: network input size (default: the net's, 224 for the ResNets)" },
    { "--pipeline", "string", "imagenet", "--data-folder: the zoo's transform chain", choices = { "imagenet", "cifar10" } },
    { "--workers", "int", 2, "--data-folder: decoding threads" },
    { "--skip-bad-images", "flag", false, "--data-folder: skip undecodable images (counted at the end) instead of stopping" },
    { "--amp-level", "string", "O0", "MindSpore's amp_level: O0 (float32) or O2 (Conv2d/Dense in bfloat16 on the CPU; "
      .. "bf16 activations between the fused convolutions)", arg = "LEVEL" } },
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
  local params = spore.load_checkpoint(o.ckpt, { dec_key = o.dec_key, dec_mode = o.dec_mode })
  local ds
  if o.data_folder then
    wf.folder_opts(o, ns, cli.usage_error)
    if o.val_split then
      local _
      _, ds = wf.split_folder(o.data_folder, o, o.val_split)
    else
      ds = wf.folder_dataset(o.data_folder, o, false)
    end
    if o.limit then ds = ds:with({ num_samples = o.limit }) end
    -- the class count is the checkpoint head's; it must be the folder's
    local hw = params[ns.head .. ".weight"]
    if spore.is_tensor(hw) and hw:dim() == 2 then
      o.num_class = hw:size(1)
      if o.num_class ~= #ds.classes then
        error(("%s has a %d-class head but %s has %d class folders"):format(o.ckpt, o.num_class, o.data_folder,
          #ds.classes), 0)
      end
    end
  else
    if o.val_split or o.image_size or o.skip_bad_images then
      cli.usage_error("--val-split, --image-size and --skip-bad-images need --data-folder")
    end
    ds = wf.dataset(o.dataset, o.data, o.net, { split = o.split, batch = o.batch, shuffle = false,
      num_samples = o.limit }, cli.usage_error)
  end
  local net = ns.build(o.num_class)
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
  local model = spore.Model(net, loss, nil, { metrics = { "accuracy", "loss" }, amp_level = o.amp_level })
  local m = model:eval(ds)
  local res = require("spore.json").ordered()
  res.accuracy = m.accuracy
  res.loss = m.loss
  res.samples = m.samples
  if o.data_folder then
    res.classes = ds.classes
    res.bad_images = ds.bad_images or 0
    if o.skip_bad_images then
      io.stderr:write(("eval.lua: skipped %d bad image%s\n"):format(res.bad_images, res.bad_images == 1 and "" or "s"))
    end
  end
  res.param_not_load = pnl
  res.ckpt_not_load = cnl
  res.seconds = spore.clock() - t0
  return res
end)
