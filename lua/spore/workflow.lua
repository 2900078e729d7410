--- spore.workflow — the pieces the scripts share: nets and datasets by name,
-- the head of each net, and the checkpoint-loading step with its report.
local spore = require("spore")

local M = {}

M.NETS = {
  lenet5 = { head = "fc3", head_in = 84, channels = 1, size = 32,
    build = function(nc) return spore.models.lenet5{ num_class = nc } end },
  resnet18 = { head = "end_point", head_in = 512, channels = 3, size = 224,
    build = function(nc) return spore.models.resnet18{ class_num = nc } end },
  resnet34 = { head = "end_point", head_in = 512, channels = 3, size = 224,
    build = function(nc) return spore.models.resnet34{ class_num = nc } end },
  resnet50 = { head = "end_point", head_in = 2048, channels = 3, size = 224,
    build = function(nc) return spore.models.resnet50{ class_num = nc } end },
}

M.DATASETS = {
  mnist = { default_dir = nil, classes = 10 },
  ["fashion-mnist"] = { default_dir = "/usr/share/datasets/fashion-mnist", classes = 10 },
}

local function names(t)
  local n = {}
  for k in pairs(t) do n[#n + 1] = k end
  table.sort(n)
  return table.concat(n, ", ")
end

--- Network spec by name, or a usage error listing the choices.
function M.net_spec(name, usage_error)
  local s = M.NETS[name]
  if not s then (usage_error or error)("unknown --net '" .. tostring(name) .. "' (choose one of " .. names(M.NETS) .. ")") end
  return s
end

--- Dataset for a net, through the MindSpore LeNet tutorial pipeline (28→32
-- bilinear, /255, (x-0.1307)/0.3081, CHW; int32 labels).
-- opts: split, batch, shuffle, seed, num_samples, drop_remainder.
function M.dataset(name, dir, net_name, opts, usage_error)
  local d = M.DATASETS[name]
  if not d then (usage_error or error)("unknown --dataset '" .. tostring(name) .. "' (choose one of " .. names(M.DATASETS) .. ")") end
  dir = dir or d.default_dir
  if not dir then (usage_error or error)("--data DIR is required for --dataset " .. name) end
  local ns = M.net_spec(net_name, usage_error)
  if ns.channels ~= 1 then
    error("--net " .. net_name .. " expects " .. ns.channels .. "-channel " .. ns.size .. "x" .. ns.size
      .. " images; " .. name .. " has 1-channel 28x28 images (use --net lenet5)", 0)
  end
  local split = opts.split or "train"
  return spore.data.mnist_tutorial(dir, split, {
    batch = opts.batch or 32, shuffle = opts.shuffle, seed = opts.seed, num_samples = opts.num_samples,
    drop_remainder = opts.drop_remainder, fashion = (name == "fashion-mnist"),
  })
end

--- The zoo transform chain a script uses for an image folder (spore.data.zoo_pipeline):
-- o.pipeline ("imagenet" | "cifar10"), o.image_size, o.crop_scale (imagenet train's
-- RandomResizedCrop minimum scale; the zoo's 0.08), o.no_flip. The imagenet eval chain's
-- Resize is the zoo's 256 at 224 and scales with the image size elsewhere
-- (round(image_size * 256 / 224)): at 32 a Resize(256) would leave a centre patch.
function M.folder_transforms(o, train)
  local size = o.image_size
  if o.pipeline == "cifar10" then
    return spore.data.zoo_pipeline("cifar10", { train = train, image_size = size, flip = not o.no_flip })
  end
  if train then
    return spore.data.zoo_pipeline("imagenet", { train = true, image_size = size, flip = not o.no_flip,
      scale = { o.crop_scale or 0.08, 1.0 } })
  end
  return spore.data.zoo_pipeline("imagenet", { train = false, image_size = size,
    eval_resize = math.floor(size * 256 / 224 + 0.5) })
end

--- Check the image-folder flags of a script and fill their defaults (net's input size).
function M.folder_opts(o, ns, usage_error)
  if ns.channels ~= 3 then
    usage_error("--data-folder needs a 3-channel network (resnet18, resnet34, resnet50), not --net " .. tostring(o.net))
  end
  o.image_size = o.image_size or ns.size
  if o.image_size < 32 then usage_error("--image-size must be at least 32 (the ResNets' smallest input)") end
  if o.pipeline ~= "imagenet" and o.pipeline ~= "cifar10" then usage_error("--pipeline must be imagenet or cifar10") end
  if o.crop_scale and (o.crop_scale <= 0 or o.crop_scale > 1) then usage_error("--crop-scale must be in (0, 1]") end
  if o.workers and o.workers < 1 then usage_error("--workers must be at least 1") end
end

--- An image folder dataset with a script's flags: train (the zoo's train chain, shuffled) or
-- eval (its eval chain, in order). Returns the dataset.
function M.folder_dataset(dir, o, train, extra)
  local opts = { transforms = M.folder_transforms(o, train), batch = o.batch, shuffle = train, seed = o.seed,
    num_parallel_workers = o.workers, skip_bad_images = o.skip_bad_images or false, drop_remainder = false }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return spore.data.ImageFolderDataset(dir, opts)
end

--- The held-out part of a folder split (--val-split F): the same files for the same seed,
-- in finetune.lua and eval.lua. Returns train_part, val_part (both with the eval chain;
-- callers re-chain the train part with :with{}).
function M.split_folder(dir, o, frac)
  if frac <= 0 or frac >= 1 then error("--val-split must be in (0, 1), got " .. frac, 0) end
  local all = M.folder_dataset(dir, o, false)
  return all:split({ 1 - frac, frac }, true)
end

--- Class names by label (1-based list) from a labels file: one name a line.
function M.read_labels(path)
  local f, err = io.open(path, "r")
  if not f then error("cannot read --labels " .. path .. ": " .. tostring(err), 0) end
  local names = {}
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then names[#names + 1] = line end
  end
  f:close()
  if #names == 0 then error("--labels " .. path .. " holds no class name", 0) end
  return names
end

--- Write class names, one a line (atomically: temp + rename).
function M.write_labels(path, names)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  for _, n in ipairs(names) do f:write(n, "\n") end
  f:close()
  assert(os.rename(tmp, path))
end

--- Load renaming rules from a Lua file returning a list of {pattern, replacement} or functions.
-- The names of the built-in rule sets (spore.ckpt.rules: torch_to_mindspore,
-- mindspore_to_torch) are accepted too.
function M.load_rules(path)
  local builtin = require("spore.ckpt").rules
  if builtin and type(builtin[path]) == "table" then return builtin[path] end
  local chunk, err = loadfile(path)
  if not chunk then error("cannot read rename rules " .. path .. ": " .. err, 0) end
  local ok, rules = pcall(chunk)
  if not ok then error("rename rules " .. path .. " failed: " .. tostring(rules), 0) end
  if type(rules) ~= "table" then error("rename rules " .. path .. " must return a list of rules", 0) end
  return rules
end

--- Compact form of a load report for the JSON results line.
function M.report_summary(param_not_load, ckpt_not_load, report)
  local s = { param_not_load = param_not_load or {}, ckpt_not_load = ckpt_not_load or {},
    loaded = report and #report.loaded or 0, cast = {}, skipped = {} }
  for _, e in ipairs(report and report.cast or {}) do s.cast[#s.cast + 1] = { name = e.name, from = e.from, to = e.to } end
  for _, e in ipairs(report and report.skipped or {}) do
    s.skipped[#s.skipped + 1] = { name = e.name, reason = e.reason }
  end
  -- optimizer state another rank holds (spore.dist shard_optimizer): counted, when any
  local held = report and report.counts and report:counts().held_elsewhere
  if held then s.held_elsewhere = held end
  return s
end

--- Human lines for a load report (to stderr, so stdout ends with one JSON line).
function M.print_report(title, report)
  io.stderr:write(title .. ": " .. tostring(report) .. "\n")
end

return M
