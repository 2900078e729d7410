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
--   data.from_tensors(images, labels, opts)
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

local function idx_dataset(dir, opts, what)
  opts = opts or {}
  if type(dir) ~= "string" then error(what .. ": dataset directory (a string) expected", 3) end
  local split = opts.split or "train"
  local stem = ({ train = "train", test = "t10k", t10k = "t10k" })[split]
  if not stem then error(what .. ": split must be \"train\" or \"test\", got " .. tostring(split), 3) end
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
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or (what .. "(" .. split .. ")")
  local ds = Dataset.new(images, labels, o)
  ds.split, ds.files = split, { ip, lp }
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

--- Fashion-MNIST (same format); dir nil → /usr/share/datasets/fashion-mnist.
-- fashion_mnist(dir?, opts) or fashion_mnist(dir?, "train"|"test"[, opts]).
function M.fashion_mnist(dir, split, opts)
  if type(dir) == "table" and split == nil then dir, split = nil, dir end
  opts = split_opts(split, opts, "fashion_mnist")
  local ds = idx_dataset(dir or M.FASHION_MNIST_DIR, opts, "fashion_mnist")
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
  opts = opts or {}
  split = split or opts.split or "test"
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
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

--- CIFAR-10 binary batches from dir (or dir/cifar-10-batches-bin).
-- split "train": data_batch_1..5.bin; "test": test_batch.bin. Images uint8 HWC
-- [N,32,32,3]; default transforms {Rescale(1/255), HWC2CHW()}.
function M.cifar10(dir, opts)
  opts = opts or {}
  if type(dir) ~= "string" then error("cifar10: dataset directory (a string) expected", 2) end
  if not exists(dir .. "/test_batch.bin") and not exists(dir .. "/data_batch_1.bin")
      and exists(dir .. "/cifar-10-batches-bin/test_batch.bin") then
    dir = dir .. "/cifar-10-batches-bin"
  end
  local split = opts.split or "train"
  local files
  if split == "train" then
    files = {}
    for i = 1, 5 do files[i] = dir .. "/data_batch_" .. i .. ".bin" end
  elseif split == "test" then
    files = { dir .. "/test_batch.bin" }
  else
    error("cifar10: split must be \"train\" or \"test\", got " .. tostring(split), 2)
  end
  local ims, labs, total = {}, {}, 0
  for i, p in ipairs(files) do
    if not exists(p) then error("cifar10: cannot find " .. p, 2) end
    ims[i], labs[i] = B.cifar_load(p, 1)
    total = total + ims[i]:size(1)
  end
  local images, labels = ims[1], labs[1]
  if #files > 1 then
    local T = require("spore.tensor")
    images, labels = T.empty({ total, 32, 32, 3 }, "uint8"), T.empty({ total }, "int32")
    local at = 1
    for i = 1, #files do
      local n = ims[i]:size(1)
      images:narrow(1, at, n):copy_(ims[i])
      labels:narrow(1, at, n):copy_(labs[i])
      ims[i]:free(); labs[i]:free()
      at = at + n
    end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or ("cifar10(" .. split .. ")")
  local ds = Dataset.new(images, labels, o)
  ds.split, ds.files, ds.classes = split, files, M.CIFAR10_CLASSES
  return ds
end

--- CIFAR-100 binary files from dir (or dir/cifar-100-binary): train.bin / test.bin,
-- records of (coarse, fine) label bytes + image; labels are the fine (100-class) ones.
function M.cifar100(dir, opts)
  opts = opts or {}
  if type(dir) ~= "string" then error("cifar100: dataset directory (a string) expected", 2) end
  if not exists(dir .. "/test.bin") and exists(dir .. "/cifar-100-binary/test.bin") then dir = dir .. "/cifar-100-binary" end
  local split = opts.split or "train"
  if split ~= "train" and split ~= "test" then
    error("cifar100: split must be \"train\" or \"test\", got " .. tostring(split), 2)
  end
  local p = dir .. "/" .. split .. ".bin"
  if not exists(p) then error("cifar100: cannot find " .. p, 2) end
  local images, labels = B.cifar_load(p, 2)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.transforms = opts.transforms or default_transforms()
  o.name = o.name or ("cifar100(" .. split .. ")")
  local ds = Dataset.new(images, labels, o)
  ds.split, ds.files = split, { p }
  return ds
end

--- A dataset over in-memory tensors (uint8/float32 images [N,H,W(,C)], labels [N]).
function M.from_tensors(images, labels, opts) return Dataset.new(images, labels, opts) end

return M
