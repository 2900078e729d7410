-- predict.lua — the top classes of each image (JPEG/PNG) under a trained checkpoint.
--   luajit scripts/predict.lua --net resnet18 --ckpt FILE [--image-size N] [--top 5]
--     [--data-folder DIR | --labels FILE] IMAGE...
-- Class names: the sorted subfolder names of --data-folder (the order the training folder
-- gave the labels), or --labels FILE (one name a line, in label order), or classes.txt beside
-- the checkpoint (finetune.lua writes it); else the label numbers. Images go through the
-- zoo's eval chain (--pipeline). Prints one line per image:
--   path: name 0.912, name 0.051, ...
-- and ends with one JSON line {"predictions":[{"file":..,"top":[{"label":..,"name":..,"p":..}]}],..}.
-- A corrupt image stops with one line naming it; --skip-bad-images skips it (counted at the end).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "predict.lua",
  summary = "Print the top-K classes of each image under a checkpoint.",
  args = { { "images", "image files (JPEG, PNG)", many = true } },
  options = { { "net", default = "resnet18", help = "network: resnet18 | resnet34 | resnet50" },
    { "ckpt", help = "checkpoint file (required)" },
    { "--image-size", "int", nil, "network input size (default: the net's, 224 for the ResNets)" },
    { "--top", "int", 5, "classes to print per image" },
    { "--data-folder", "string", nil, "class names from this folder's sorted subfolders" },
    { "--labels", "string", nil, "class names from this file, one a line in label order" },
    { "--pipeline", "string", "imagenet", "the zoo's eval chain", choices = { "imagenet", "cifar10" } },
    { "--skip-bad-images", "flag", false, "skip undecodable images (counted at the end) instead of stopping" },
    { "batch", default = 32 }, "dec_key", "dec_mode", "quiet" },
}

local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end

cli.main(spec, function(o)
  local spore = require("spore")
  local wf = require("spore.workflow")
  local fs = require("ffi.fs")
  if not o.ckpt then cli.usage_error("--ckpt FILE is required") end
  if o.top < 1 then cli.usage_error("--top must be at least 1") end
  if o.batch < 1 then cli.usage_error("--batch must be at least 1") end
  if o.data_folder and o.labels then cli.usage_error("give --data-folder or --labels, not both") end
  local images = o.images
  if type(images) ~= "table" or #images == 0 then cli.usage_error("give at least one IMAGE") end
  local ns = wf.net_spec(o.net, cli.usage_error)
  wf.folder_opts(o, ns, cli.usage_error)
  local t0 = spore.clock()

  local params = spore.load_checkpoint(o.ckpt, { dec_key = o.dec_key, dec_mode = o.dec_mode })
  local hw = params[ns.head .. ".weight"]
  if not (spore.is_tensor(hw) and hw:dim() == 2) then
    error(o.ckpt .. " has no " .. ns.head .. ".weight: is it a checkpoint of " .. o.net .. "?", 0)
  end
  local nclass = hw:size(1)
  local names, names_from
  if o.labels then
    names, names_from = wf.read_labels(o.labels), o.labels
  elseif o.data_folder then
    local cls = {}
    for _, n in ipairs(fs.list(o.data_folder)) do
      if fs.is_dir(o.data_folder .. "/" .. n) then cls[#cls + 1] = n end
    end
    table.sort(cls)
    names, names_from = cls, o.data_folder
  else
    local beside = (o.ckpt:match("^(.*)/[^/]*$") or ".") .. "/classes.txt"
    if exists(beside) then names, names_from = wf.read_labels(beside), beside end
  end
  if names and #names ~= nclass then
    error(("%s names %d classes but %s has a %d-class head"):format(names_from, #names, o.ckpt, nclass), 0)
  end

  local net = ns.build(nclass)
  local pnl, _, report = spore.load_param_into_net(net, params)
  for _, p in ipairs(net:trainable_params()) do
    for _, n in ipairs(pnl) do
      if n == p.name then error(o.ckpt .. " lacks parameter " .. n .. " of " .. o.net, 0) end
    end
  end
  if #report.skipped > 0 then
    local e = report.skipped[1]
    error(o.ckpt .. ": tensor '" .. e.name .. "' " .. e.reason, 0)
  end

  -- the images in command-line order, each decoded and transformed on its own so that a
  -- bad one is named (and skipped with --skip-bad-images, or stops with its one-line error)
  local transforms = wf.folder_transforms(o, false)
  local model = spore.Model(net)
  local preds, bad = {}, 0
  local K = math.min(o.top, nclass)
  local pending, batch = {}, nil
  local function flush()
    if #pending == 0 then return end
    local x = #pending == batch:size(1) and batch or batch:narrow(1, 1, #pending)
    local rows = model:predict(x):to("cpu"):to("float64"):totable()
    for r, file in ipairs(pending) do
      local row = rows[r]
      local mx = -math.huge
      for _, v in ipairs(row) do if v > mx then mx = v end end
      local sum = 0
      for _, v in ipairs(row) do sum = sum + math.exp(v - mx) end
      local idx = {}
      for i = 1, #row do idx[i] = i end
      table.sort(idx, function(a, b) return row[a] > row[b] end)
      local top = {}
      for k = 1, K do
        local l = idx[k] - 1
        top[k] = { label = l, name = names and names[l + 1] or tostring(l), p = math.exp(row[idx[k]] - mx) / sum }
      end
      preds[#preds + 1] = { file = file, top = top }
    end
    pending = {}
  end
  for _, file in ipairs(images) do
    local ok, img = pcall(spore.data.decode_image, file, 3)
    if not ok then
      if not o.skip_bad_images then error(tostring(img), 0) end
      bad = bad + 1
      if not o.quiet then io.stderr:write("predict.lua: skipped: ", tostring(img), "\n") end
    else
      local x = spore.data.transform_image(img, transforms)
      if not batch then
        local sh = x:shape()
        batch = spore.empty({ o.batch, sh[1], sh[2], sh[3] }, x:dtype())
      end
      batch:select(1, #pending + 1):copy_(x)
      pending[#pending + 1] = file
      if #pending == o.batch then flush() end
    end
  end
  flush()
  local json = require("spore.json")
  for _, pr in ipairs(preds) do
    local parts = {}
    for _, t in ipairs(pr.top) do parts[#parts + 1] = ("%s %.3f"):format(t.name, t.p) end
    io.stdout:write(pr.file, ": ", table.concat(parts, ", "), "\n")
  end
  if o.skip_bad_images then
    io.stderr:write(("predict.lua: skipped %d bad image%s\n"):format(bad, bad == 1 and "" or "s"))
  end
  local res = json.ordered()
  res.predictions = preds
  res.names_from = names_from
  res.bad_images = bad
  res.seconds = spore.clock() - t0
  return res
end)
