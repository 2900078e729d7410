--- spore.data.Dataset — an in-memory image/label dataset with a MindSpore-like
-- pipeline: (num_samples) → shuffle → map(transforms, in C, one call per batch)
-- → batch → repeat.
--   for images, labels in ds:batches() do ... end
-- `images` and `labels` are the dataset's own buffers, reused by the next batch
-- (copy them to keep them): images [N,C,H,W] (or [N,H,W,C] without HWC2CHW),
-- labels [N] int32 by default. The last, smaller batch (drop_remainder=false) is
-- a view of the same buffers. opts.device ("cpu", "sim", ...; default spore's default
-- device) is where batches are yielded: the engine's data kernels fill host buffers, then
-- one explicit copy per batch moves them into the device buffers.
local B = require("ffi.data")
local T = require("spore.tensor")
local tf = require("spore.data.transforms")
local D = require("spore.device")
local class = require("spore.class")

local Dataset = class("Dataset")

local function opt_bool(v, default)
  if v == nil then return default end
  return v and true or false
end

--- Dataset.new(images, labels, opts)
-- images: uint8 or float32 Tensor [N,H,W] or [N,H,W,C]; labels: Tensor [N] or [N,K].
-- opts: batch (32), shuffle (true), seed (0), drop_remainder (false), repeat (1),
--   num_samples (all; the first n), transforms (list, default {} = raw images),
--   label_dtype ("int32") or label_transforms ({TypeCast(dtype)}), name (for messages),
--   device (where batches live; default spore.get_default_device()).
function Dataset.new(images, labels, opts)
  opts = opts or {}
  local name = opts.name or "dataset"
  if not T.is_tensor(images) or not T.is_tensor(labels) then
    error(name .. ": images and labels must be Tensors", 2)
  end
  local ish = images:shape()
  if #ish ~= 3 and #ish ~= 4 then
    error(name .. ": images must be [N,H,W] or [N,H,W,C], got [" .. table.concat(ish, ",") .. "]", 2)
  end
  local n = ish[1]
  if labels:size(1) ~= n then
    error(name .. ": " .. n .. " images but " .. labels:size(1) .. " labels", 2)
  end
  local batch = opts.batch or opts.batch_size or 32
  if type(batch) ~= "number" or batch < 1 or batch ~= math.floor(batch) then
    error(name .. ": batch must be a positive integer, got " .. tostring(batch), 2)
  end
  local rep = opts["repeat"] or 1
  if type(rep) ~= "number" or rep < 1 or rep ~= math.floor(rep) then
    error(name .. ": repeat must be a positive integer, got " .. tostring(rep), 2)
  end
  local size = n
  if opts.num_samples then
    if opts.num_samples < 1 then error(name .. ": num_samples must be positive", 2) end
    size = math.min(n, opts.num_samples)
  end
  local device = opts.device or D.get()
  D.check(device, 2, name .. ": device")
  local label_dtype = opts.label_dtype
  for i, t in ipairs(opts.label_transforms or {}) do
    if type(t) ~= "table" or t.op ~= "TypeCast" then
      error(name .. ": label_transforms[" .. i .. "]: only TypeCast is supported for labels", 2)
    end
    label_dtype = t.dtype
  end
  local self = setmetatable({
    name = name, images = images, labels = labels, batch = batch, ["repeat"] = rep,
    shuffle = opt_bool(opts.shuffle, true), drop_remainder = opt_bool(opts.drop_remainder, false),
    _size = size, label_dtype = label_dtype or "int32", device = device,
  }, Dataset)
  local h, w, c = ish[2], ish[3], ish[4] or 1
  local list = opts.transforms or {}
  local ops, dtype = tf.compile(list, h, w, c)
  self.transforms = list
  self._ops, self._nops = B.compile_ops(ops)
  self._item_shape = B.out_shape(h, w, c, self._ops, self._nops)
  self.image_dtype = dtype or (#ops > 0 and "float32" or images:dtype())
  if #ish == 3 and #ops == 0 then self._item_shape = { h, w, 1 } end
  self._rng = require("ffi.tensor").new_rng(opts.seed or 0)
  self._order = B.index_array(size)
  for i = 0, size - 1 do self._order[i] = i end
  self.seed = opts.seed or 0
  return self
end

--- Number of samples (one pass, before repeat).
function Dataset:size() return self._size end
--- Batch size.
function Dataset:get_batch_size() return self.batch end
--- Number of batches one ds:batches() loop yields (repeat included).
function Dataset:num_batches()
  local per = self.drop_remainder and math.floor(self._size / self.batch) or math.ceil(self._size / self.batch)
  return per * self["repeat"]
end
--- MindSpore's name for num_batches().
Dataset.get_dataset_size = Dataset.num_batches
--- MindSpore's name for batches().
Dataset.create_tuple_iterator = function(self) return self:batches() end
--- Shape of one transformed image ({C,H,W} or {H,W,C}).
function Dataset:item_shape() return { unpack(self._item_shape) } end

function Dataset:_buffers()
  if not self._img then
    local s = self._item_shape
    self._img = T.empty({ self.batch, s[1], s[2], s[3] }, self.image_dtype)
    local lsh = self.labels:shape()
    lsh[1] = self.batch
    self._lab = T.empty(lsh, self.label_dtype)
    self._tail = {}
    if self.device ~= "cpu" then
      self._dimg = T.empty(self._img:shape(), self.image_dtype, self.device)
      self._dlab = T.empty(lsh, self.label_dtype, self.device)
      self._dtail = {}
    end
  end
  return self._img, self._lab
end

--- Iterate the batches of one pass (× repeat): `for images, labels in ds:batches()`.
-- Reshuffles at the start of every pass when shuffle is on (seeded, reproducible).
-- views of the first n rows of a batch's images and labels, made once per short size
local function tail(cache, images, labels, n)
  local t = cache[n]
  if not t then
    t = { images:narrow(1, 1, n), labels:narrow(1, 1, n) }
    cache[n] = t
  end
  return t[1], t[2]
end

function Dataset:batches()
  local img, lab = self:_buffers()
  local order, size, bs = self._order, self._size, self.batch
  local rep, pass, pos = self["repeat"], 0, size -- pos = size forces a new pass
  local drop = self.drop_remainder
  return function()
    if pos >= size or (drop and size - pos < bs) then
      if pass >= rep then return nil end
      pass = pass + 1
      pos = 0
      if self.shuffle then B.shuffle(order, size, self._rng) end
      if drop and size < bs then return nil end
    end
    local n = math.min(bs, size - pos)
    if n == 0 then return nil end -- an empty dataset yields no batch (num_batches() is 0)
    local idx = order + pos
    local bi, bl = img, lab
    if n < bs then bi, bl = tail(self._tail, img, lab, n) end
    B.image_batch(bi, self.images, idx, n, self._ops, self._nops, self._rng)
    B.gather_rows(bl, self.labels, idx, n)
    pos = pos + n
    local di, dl = self._dimg, self._dlab
    if di then
      if n < bs then di, dl = tail(self._dtail, di, dl, n) end
      di:copy_(bi)
      dl:copy_(bl)
      return di, dl
    end
    return bi, bl
  end
end

--- Decoded (untransformed) sample i (1-based): image Tensor view, label number.
function Dataset:sample(i)
  if i < 1 or i > self._size then error(self.name .. ": sample " .. i .. " out of range 1.." .. self._size, 2) end
  local lab = self.labels:dim() == 1 and self.labels[i] or self.labels:select(1, i)
  return self.images:select(1, i), lab
end

function Dataset:__tostring()
  return string.format("%s(%d samples, batch %d, %d batches, image %s %s)", self.name, self._size, self.batch,
    self:num_batches(), table.concat(self._item_shape, "x"), self.image_dtype)
end

return Dataset
