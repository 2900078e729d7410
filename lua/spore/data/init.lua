--- spore.data — datasets (decoding in C, pipeline in Lua).
--   local data = require("spore").data
--   local ds = data.mnist_tutorial(dir, "test")             -- LeNet tutorial pipeline
--   for images, labels in ds:batches() do ... end             -- float32 [N,1,32,32], int32 [N]
-- Constructors:
--   data.mnist(dir, split?, opts?)   idx files train-*/t10k-* (plain or .gz); split "train"|"test"
--   data.fashion_mnist(dir?, split?, opts?)  same format; dir defaults to /usr/share/datasets/fashion-mnist
--   data.mnist_tutorial(dir, split?, opts?)  resize 32 bilinear, /255, (x-0.1307)/0.3081, CHW
--   data.cifar10(dir, opts)          CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)
--   data.cifar100(dir, opts)         CIFAR-100 binary (train.bin, test.bin; fine labels)
--   data.from_tensors(images, labels, opts)   HWC images or an NCHW float batch
--   data.ImageFolderDataset(dir, opts) one class per subfolder, JPEG/PNG decoded in C
--   data.zoo_pipeline(name, opts)    the model zoo ResNet's transform chains (imagenet, cifar10)
--   data.load_npy(path) / data.save_npy(path, t)   NumPy .npy files
--   data.decode_image(path[, channels])            one JPEG/PNG → uint8 [H,W,C]
--   MindSpore's names: MnistDataset, FashionMnistDataset, Cifar10Dataset, Cifar100Dataset
--     (usage "train" | "test" | "all")
--   data.idx_load(path)              one idx file → Tensor
-- opts: split ("train"|"test"), batch (32), shuffle (true), seed (0),
--   drop_remainder (false), repeat (1), num_samples, transforms (list of
--   data.vision.*; default {Rescale(1/255, 0), HWC2CHW()}, {} for raw uint8 HWC),
--   label_dtype ("int32"; label_transforms = {TypeCast(dtype)} works too).
local B = require("ffi.data")
local Dataset = require("spore.data.dataset")
local vision = require("spore.data.transforms")

local M = {}
M.Dataset = Dataset
M.vision = vision
M.transforms = vision
for k, v in pairs(vision) do if k ~= "compile" then M[k] = v end end

M.FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
M.FASHION_MNIST_CLASSES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }
M.CIFAR10_CLASSES = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck" }

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- decoded tensors are shared (read-only) between datasets while alive
local cache = setmetatable({}, { __mode = "v" })

--- Decode one idx file (plain or gzip) → Tensor. Errors name the file.
function M.idx_load(path)
  if type(path) ~= "string" then error("idx_load: path must be a string, got " .. type(path), 2) end
  local t = cache[path]
  if t then return t end
  t = B.idx_load(path)
  cache[path] = t
  return t
end

local function find(dir, base, what)
  for _, p in ipairs({ dir .. "/" .. base, dir .. "/" .. base .. ".gz" }) do
    if exists(p) then return p end
  end
  error(what .. ": cannot find " .. dir .. "/" .. base .. " (or " .. base .. ".gz)", 4)
end

local function default_transforms() return { vision.Rescale(1 / 255, 0), vision.HWC2CHW() } end

local function concat_rows(parts, what)
  if #parts == 1 then return parts[1] end
  local T = require("spore.tensor")
  local total = 0
  for _, p in ipairs(parts) do total = total + p:size(1) end
  local sh = parts[1]:shape()
  sh[1] = total
  local out = T.empty(sh, parts[1]:dtype())
  local at = 1
  for _, p in ipairs(parts) do
    local rs = p:shape()
    for d = 2, #sh do
      if rs[d] ~= sh[d] then error(what .. ": the splits' shapes differ", 4) end
    end
    out:narrow(1, at, p:size(1)):copy_(p)
    at = at + p:size(1)
  end
  return out
end

-- split (spore) / usage (MindSpore): "train" | "test" | "all" (train then test)
local function split_of(o, what, level)
  if o.split ~= nil and o.usage ~= nil and o.split ~= o.usage then
    error(what .. ": split and usage disagree (" .. tostring(o.split) .. " vs " .. tostring(o.usage) .. ")", level)
  end
  local split = o.usage or o.split or "train"
  if split == "t10k" then split = "test" end
  if split ~= "train" and split ~= "test" and split ~= "all" then
    error(what .. ": usage must be \"train\", \"test\" or \"all\", got " .. tostring(split), level)
  end
  return split
end

local IDX_EXTRA = { "split", "usage" }

local function idx_dataset(dir, opts, what, extra)
  local rest
  rest, opts = Dataset.check_opts(what, opts, extra or IDX_EXTRA,
    { num_parallel_workers = "the idx images are decoded once into memory; the batch transform is one C call" },
    { split = "string", usage = "string", fashion = "boolean" }, 3)
  if type(dir) ~= "string" then error(what .. ": dataset directory (a string) expected", 3) end
  local split = split_of(opts, what, 3)
  local ims, labs, files = {}, {}, {}
  for _, sp in ipairs(split == "all" and { "train", "test" } or { split }) do
    local stem = ({ train = "train", test = "t10k" })[sp]
    local ip = find(dir, stem .. "-images-idx3-ubyte", what)
    local lp = find(dir, stem .. "-labels-idx1-ubyte", what)
    local images, labels = M.idx_load(ip), M.idx_load(lp)
    if images:dim() ~= 3 or images:dtype() ~= "uint8" then
      error(what .. ": " .. ip .. ": expected uint8 images [N,H,W], got " .. images:dtype() .. " ["
        .. table.concat(images:shape(), ",") .. "]", 3)
    end
    if labels:dim() ~= 1 or labels:dtype() ~= "uint8" then
      error(what .. ": " .. lp .. ": expected uint8 labels [N], got " .. labels:dtype() .. " ["
        .. table.concat(labels:shape(), ",") .. "]", 3)
    end
    if labels:size(1) ~= images:size(1) then
      error(what .. ": " .. ip .. " has " .. images:size(1) .. " images but " .. lp .. " has "
        .. labels:size(1) .. " labels", 3)
    end
    local mx = labels:max()
    if mx > 9 then error(what .. ": " .. lp .. ": label " .. mx .. " out of range 0..9", 3) end
    ims[#ims + 1], labs[#labs + 1] = images, labels
    files[#files + 1], files[#files + 2] = ip, lp
  end
  local o = rest
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or (what .. "(" .. split .. ")")
  local ds = Dataset.new(concat_rows(ims, what), concat_rows(labs, what), o)
  ds.split, ds.files = split, files
  return ds
end

-- (split, opts) | (opts): MindSpore's usage ("train"|"test") may come second, as a string
local function split_opts(split, opts, what)
  if type(split) == "table" and opts == nil then return split end
  if split ~= nil and type(split) ~= "string" then
    error(what .. ": second argument must be a split (\"train\"|\"test\") or an options table, got " .. type(split), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then error(what .. ": options must be a table, got " .. type(opts), 3) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if split then o.split = split end
  return o
end

--- MNIST from dir (files train-images-idx3-ubyte[.gz], t10k-...): mnist(dir, opts) or
-- mnist(dir, "train"|"test"[, opts]). opts as above.
function M.mnist(dir, split, opts) return idx_dataset(dir, split_opts(split, opts, "mnist"), "mnist") end
--- MindSpore's name: MnistDataset(dir, {usage = "train"|"test"|"all", ...}).
function M.MnistDataset(dir, opts) return idx_dataset(dir, opts, "MnistDataset") end

--- Fashion-MNIST (same format); dir nil → /usr/share/datasets/fashion-mnist.
-- fashion_mnist(dir?, opts) or fashion_mnist(dir?, "train"|"test"[, opts]).
function M.fashion_mnist(dir, split, opts)
  if type(dir) == "table" and split == nil then dir, split = nil, dir end
  opts = split_opts(split, opts, "fashion_mnist")
  local ds = idx_dataset(dir or M.FASHION_MNIST_DIR, opts, "fashion_mnist")
  ds.classes = M.FASHION_MNIST_CLASSES
  return ds
end
--- MindSpore's name: FashionMnistDataset(dir?, {usage = ..., ...}).
function M.FashionMnistDataset(dir, opts)
  if type(dir) == "table" and opts == nil then dir, opts = nil, dir end
  local ds = idx_dataset(dir or M.FASHION_MNIST_DIR, opts, "FashionMnistDataset")
  ds.classes = M.FASHION_MNIST_CLASSES
  return ds
end

--- The MindSpore LeNet tutorial pipeline: Resize(32, 32) bilinear, Rescale(1/255),
-- Normalize(0.1307, 0.3081), HWC2CHW; labels int32; batch 32; shuffle on for the
-- train split only. split: "train" | "test" (default "test"); opts override any
-- dataset option (batch, shuffle, seed, drop_remainder, repeat, num_samples).
-- opts.fashion = true reads Fashion-MNIST (dir nil → the Debian path).
function M.mnist_tutorial(dir, split, opts)
  if type(split) == "table" then split, opts = nil, split end
  local _, all = Dataset.check_opts("mnist_tutorial", opts, { "split", "usage", "fashion" },
    { num_parallel_workers = "the idx images are decoded once into memory; the batch transform is one C call" },
    { split = "string", usage = "string", fashion = "boolean" }, 2)
  if all.transforms then
    error("mnist_tutorial: the tutorial's transforms are fixed; use spore.data.mnist(dir, {transforms = ...})", 2)
  end
  opts = all
  split = split or opts.split or opts.usage or "test"
  local o = {}
  for k, v in pairs(opts) do if k ~= "fashion" and k ~= "usage" then o[k] = v end end
  o.split = split
  o.transforms = {
    vision.Resize({ 32, 32 }), vision.Rescale(1 / 255, 0),
    vision.Normalize({ 0.1307 }, { 0.3081 }), vision.HWC2CHW(),
  }
  if o.shuffle == nil then o.shuffle = (split == "train") end
  o.batch = o.batch or o.batch_size or 32
  o.label_dtype = o.label_dtype or "int32"
  if opts.fashion then return M.fashion_mnist(dir, o) end
  return M.mnist(dir, o)
end

local CIFAR_REFUSED = { num_parallel_workers = "the CIFAR batches are decoded once into memory; the batch transform is one C call" }

--- CIFAR-10 binary batches from dir (or dir/cifar-10-batches-bin), MindSpore's layout:
-- usage (or split) "train": data_batch_1..5.bin; "test": test_batch.bin; "all": both, in that
-- order. Images uint8 HWC [N,32,32,3]; default transforms {Rescale(1/255), HWC2CHW()}.
local function cifar10(dir, opts, what)
  local rest
  rest, opts = Dataset.check_opts(what, opts, { "split", "usage" }, CIFAR_REFUSED,
    { split = "string", usage = "string" }, 3)
  if type(dir) ~= "string" then error(what .. ": dataset directory (a string) expected", 3) end
  if not exists(dir .. "/test_batch.bin") and not exists(dir .. "/data_batch_1.bin")
      and exists(dir .. "/cifar-10-batches-bin/test_batch.bin") then
    dir = dir .. "/cifar-10-batches-bin"
  end
  local split = split_of(opts, what, 3)
  local files = {}
  if split ~= "test" then
    for i = 1, 5 do files[#files + 1] = dir .. "/data_batch_" .. i .. ".bin" end
  end
  if split ~= "train" then files[#files + 1] = dir .. "/test_batch.bin" end
  local ims, labs = {}, {}
  for i, p in ipairs(files) do
    if not exists(p) then error(what .. ": cannot find " .. p, 3) end
    ims[i], labs[i] = B.cifar_load(p, 1)
  end
  local images, labels = concat_rows(ims, what), concat_rows(labs, what)
  if #files > 1 then
    for i = 1, #files do ims[i]:free(); labs[i]:free() end
  end
  local o = rest
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or (what .. "(" .. split .. ")")
  local ds = Dataset.new(images, labels, o)
  ds.split, ds.files, ds.classes = split, files, M.CIFAR10_CLASSES
  return ds
end
function M.cifar10(dir, opts) return cifar10(dir, opts, "cifar10") end
--- MindSpore's name: Cifar10Dataset(dir, {usage = "train"|"test"|"all", ...}).
function M.Cifar10Dataset(dir, opts) return cifar10(dir, opts, "Cifar10Dataset") end

--- CIFAR-100 binary files from dir (or dir/cifar-100-binary): train.bin / test.bin,
-- records of (coarse, fine) label bytes + image; labels are the fine (100-class) ones.
local function cifar100(dir, opts, what)
  local rest
  rest, opts = Dataset.check_opts(what, opts, { "split", "usage" }, CIFAR_REFUSED,
    { split = "string", usage = "string" }, 3)
  if type(dir) ~= "string" then error(what .. ": dataset directory (a string) expected", 3) end
  if not exists(dir .. "/test.bin") and exists(dir .. "/cifar-100-binary/test.bin") then dir = dir .. "/cifar-100-binary" end
  local split = split_of(opts, what, 3)
  local files = split == "all" and { dir .. "/train.bin", dir .. "/test.bin" } or { dir .. "/" .. split .. ".bin" }
  local ims, labs = {}, {}
  for i, p in ipairs(files) do
    if not exists(p) then error(what .. ": cannot find " .. p, 3) end
    ims[i], labs[i] = B.cifar_load(p, 2)
  end
  local o = rest
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or (what .. "(" .. split .. ")")
  local ds = Dataset.new(concat_rows(ims, what), concat_rows(labs, what), o)
  ds.split, ds.files = split, files
  return ds
end
function M.cifar100(dir, opts) return cifar100(dir, opts, "cifar100") end
--- MindSpore's name: Cifar100Dataset(dir, {usage = ...}) (fine labels).
function M.Cifar100Dataset(dir, opts) return cifar100(dir, opts, "Cifar100Dataset") end

--- A dataset over in-memory tensors: uint8/float32 HWC images [N,H,W(,C)] (transformed by
-- opts.transforms), or a float NCHW batch [N,C,H,W] (yielded as it is; detected when dim 2
-- is 1..4 and dim 4 is larger, or said by layout = "NCHW"); labels [N].
function M.from_tensors(images, labels, opts) return Dataset.new(images, labels, opts) end

local ImageFolder = require("spore.data.image_folder")
M.ImageFolder = ImageFolder
--- MindSpore's ImageFolderDataset(dir, opts): see lua/spore/data/image_folder.lua.
function M.ImageFolderDataset(dir, opts) return ImageFolder.from_folder(dir, opts, "ImageFolderDataset") end
--- A dataset over a list of image files with labels (predict.lua's inputs).
function M.image_files(files, labels, opts)
  local rest
  rest, opts = Dataset.check_opts("image_files", opts, { "decode", "num_parallel_workers", "skip_bad_images" },
    nil, { decode = "boolean", num_parallel_workers = "integer", skip_bad_images = "boolean" }, 2)
  for _, k in ipairs({ "decode", "num_parallel_workers", "skip_bad_images" }) do rest[k] = opts[k] end
  return ImageFolder.new(files, labels, rest, "image_files")
end

M.zoo_pipeline = require("spore.data.zoo").zoo_pipeline

local I = require("ffi.image")
--- Read a NumPy .npy file → Tensor (the engine parses it; errors name the file).
function M.load_npy(path)
  if type(path) ~= "string" then error("load_npy: path must be a string, got " .. type(path), 2) end
  return I.npy_load(path)
end
--- Write a Tensor as a NumPy .npy file (atomically: a failure leaves the old file).
function M.save_npy(path, t)
  if type(path) ~= "string" then error("save_npy: path must be a string, got " .. type(path), 2) end
  if not require("spore.tensor").is_tensor(t) then error("save_npy: a Tensor expected", 2) end
  I.npy_save(path, t)
end
--- Run a transform list (spore.data.vision.*, a leading Decode ignored: give decoded images)
-- on one image Tensor [H,W,C] or [H,W] (uint8 or float32) → a new Tensor. Random transforms
-- draw from `seed` (default 0).
function M.transform_image(img, transforms, seed)
  if not require("spore.tensor").is_tensor(img) then error("transform_image: an image Tensor expected", 2) end
  if type(transforms) ~= "table" then error("transform_image: a list of transforms expected", 2) end
  local sh = img:shape()
  local ops, dtype = vision.compile(transforms, sh[1], sh[2], sh[3] or 1)
  local out = I.transform(img:contiguous(), I.compile_ops(ops), seed or 0)
  if dtype and out:dtype() ~= dtype then out = out:to(dtype) end
  return out
end

--- Decode one JPEG/PNG file → uint8 Tensor [H,W,3] (RGB, as MindSpore's Decode; channels = 1
-- for grayscale, 0 as stored).
function M.decode_image(path, channels)
  if type(path) ~= "string" then error("decode_image: path must be a string, got " .. type(path), 2) end
  return I.decode(path, channels or 3)
end

return M
