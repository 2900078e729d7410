--- spore.data.zoo_pipeline(name, opts) — the transform chains of the MindSpore model zoo
-- ResNet's create_dataset functions (models: official/cv/ResNet/src/dataset.py), as one
-- list of spore.data.vision transforms for a dataset's `transforms` option:
--
-- "imagenet" (create_dataset2, an ImageNet-style image folder):
--   train: Decode, RandomResizedCrop(image_size, scale = {0.08, 1.0}, ratio = {0.75, 1.333})
--          (the zoo's RandomCropDecodeResize), RandomHorizontalFlip(0.5),
--          Normalize(mean = {0.485, 0.456, 0.406} * 255, std = {0.229, 0.224, 0.225} * 255), HWC2CHW
--   eval:  Decode, Resize(256), CenterCrop(image_size), Normalize(same), HWC2CHW
-- "cifar10" (create_dataset1, Cifar10Dataset):
--   train: RandomCrop({32, 32}, {4, 4, 4, 4}), RandomHorizontalFlip(0.5),
--   then (train and eval): Resize({image_size, image_size}), Rescale(1/255, 0),
--          Normalize({0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}), HWC2CHW
-- (labels: TypeCast(int32), which is every spore dataset's default label dtype.)
--
-- opts: train (false), image_size (224), and, to adapt the chain to other data (each one
-- changes the zoo's chain where it says): eval_resize (imagenet eval's Resize, 256),
-- scale (imagenet train's RandomResizedCrop scale, {0.08, 1.0}), flip (true: the
-- RandomHorizontalFlip; false leaves it out, e.g. for digits).
local V = require("spore.data.transforms")
local check = require("spore.opts").check

local M = {}

M.IMAGENET_MEAN = { 0.485 * 255, 0.456 * 255, 0.406 * 255 }
M.IMAGENET_STD = { 0.229 * 255, 0.224 * 255, 0.225 * 255 }
M.CIFAR10_MEAN = { 0.4914, 0.4822, 0.4465 }
M.CIFAR10_STD = { 0.2023, 0.1994, 0.2010 }

local KNOWN = { "train", "image_size", "eval_resize", "scale", "flip" }
local REFUSED = {
  target = "spore picks no device by name here; datasets take device =",
  distribute = "use the dataset's num_shards and shard_id",
  enable_cache = "dataset caches are not implemented",
  cache_session_id = "dataset caches are not implemented",
  batch_size = "the pipeline is the transforms only: give batch to the dataset",
  repeat_num = "the pipeline is the transforms only: give repeat to the dataset",
}
local TYPES = { train = "boolean", image_size = "integer", eval_resize = "integer", scale = "table", flip = "boolean" }

function M.zoo_pipeline(name, opts)
  opts = check("zoo_pipeline", opts, KNOWN, REFUSED, TYPES)
  local size = opts.image_size or 224
  if size < 1 then error("zoo_pipeline: image_size must be positive, got " .. size, 2) end
  local train = opts.train == true
  local flip = opts.flip ~= false
  if name == "imagenet" then
    if opts.eval_resize and train then error("zoo_pipeline: eval_resize is for the eval chain (train = false)", 2) end
    if opts.scale and not train then error("zoo_pipeline: scale is for the train chain (train = true)", 2) end
    local t = { V.Decode() }
    if train then
      t[#t + 1] = V.RandomResizedCrop(size, opts.scale or { 0.08, 1.0 }, { 0.75, 1.333 })
      if flip then t[#t + 1] = V.RandomHorizontalFlip(0.5) end
    else
      t[#t + 1] = V.Resize(opts.eval_resize or 256)
      t[#t + 1] = V.CenterCrop(size)
    end
    t[#t + 1] = V.Normalize(M.IMAGENET_MEAN, M.IMAGENET_STD)
    t[#t + 1] = V.HWC2CHW()
    return t
  elseif name == "cifar10" then
    if opts.eval_resize or opts.scale then error("zoo_pipeline: eval_resize and scale are imagenet options", 2) end
    local t = {}
    if train then
      t[#t + 1] = V.RandomCrop({ 32, 32 }, { 4, 4, 4, 4 })
      if flip then t[#t + 1] = V.RandomHorizontalFlip(0.5) end
    end
    t[#t + 1] = V.Resize({ size, size })
    t[#t + 1] = V.Rescale(1.0 / 255.0, 0.0)
    t[#t + 1] = V.Normalize(M.CIFAR10_MEAN, M.CIFAR10_STD)
    t[#t + 1] = V.HWC2CHW()
    return t
  end
  error("zoo_pipeline: unknown pipeline '" .. tostring(name) .. "' (imagenet | cifar10)", 2)
end

return M
