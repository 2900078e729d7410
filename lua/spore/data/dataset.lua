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
local opts_check = require("spore.opts").check

local Dataset = class("Dataset")

-- MindSpore builds a pipeline by chaining calls (ds.map(...).batch(32).repeat(2)); spore's
-- datasets take the same steps as constructor options and run them in C, in one pass. The
-- chained calls are refused by name, with the option that does the job (never a
-- method-not-found, never a silent no-op).
local CHAINED = {
  map = "pass the transforms as an option: {transforms = {...}} (images), {label_transforms = {TypeCast(...)}} (labels)",
  batch = "pass {batch = N, drop_remainder = true|false} to the constructor",
  shuffle = "pass {shuffle = true, seed = N} to the constructor (a full shuffle per pass)",
  ["repeat"] = "pass {repeat = N} to the constructor",
  project = "batches are (images, labels)", rename = "batches are (images, labels)",
  zip = "datasets are not combined", concat = "datasets are not combined", take = "pass {num_samples = N}",
  skip = "not implemented", filter = "not implemented", bucket_batch_by_length = "not implemented",
  padded_batch = "not implemented", sync_wait = "not implemented", device_que = "not implemented",
  create_dict_iterator = "iterate with `for images, labels in ds:batches() do ... end`",
}
--- Install the refusals on a dataset class (Dataset and ImageFolderDataset).
function Dataset.refuse_chained(cls)
  for name, instead in pairs(CHAINED) do
    cls[name] = function(self)
      error(("%s: %s() is MindSpore's pipeline call, which spore does not implement: %s"):format(
        (type(self) == "table" and self.name) or cls.__name, name, instead), 2)
    end
  end
end
Dataset.refuse_chained(Dataset)

local function opt_bool(v, default)
  if v == nil then return default end
  return v and true or false
end

-- The options every dataset takes (constructors add their own, e.g. split/usage).
Dataset.KNOWN = { "batch", "batch_size", "shuffle", "seed", "drop_remainder", "repeat", "num_samples",
  "transforms", "label_dtype", "label_transforms", "name", "device", "num_shards", "shard_id", "layout" }
-- MindSpore dataset keys spore does not implement, with what to do instead.
Dataset.REFUSED = {
  sampler = "samplers are not implemented; use shuffle, seed, num_samples, num_shards and shard_id",
  cache = "dataset caches are not implemented",
  python_multiprocessing = "spore runs its transforms in C, not in Python processes",
  max_rowsize = "spore runs its transforms in C, not in Python processes",
  padded_sample = "padded samples are not implemented",
  num_padded = "padded samples are not implemented",
}
Dataset.TYPES = { batch = "integer", batch_size = "integer", shuffle = "boolean", seed = "integer",
  drop_remainder = "boolean", ["repeat"] = "integer", num_samples = "integer", transforms = "table",
  label_dtype = "string", label_transforms = "table", name = "string", device = "string",
  num_shards = "integer", shard_id = "integer", layout = "string" }

--- Check a constructor's options: Dataset.KNOWN plus `extra` keys (list), the MindSpore keys
-- spore refuses (Dataset.REFUSED plus `refused`), types. Returns a copy of o without the
-- `extra` keys (ready for Dataset.new) and the original table.
function Dataset.check_opts(where, o, extra, refused, types, level)
  local known, ref, ty = {}, {}, {}
  for _, k in ipairs(Dataset.KNOWN) do known[k] = true end
  for _, k in ipairs(extra or {}) do known[k] = true end
  for k, v in pairs(Dataset.REFUSED) do ref[k] = v end
  for k, v in pairs(refused or {}) do ref[k] = v end
  for k, v in pairs(Dataset.TYPES) do ty[k] = v end
  for k, v in pairs(types or {}) do ty[k] = v end
  o = opts_check(where, o, known, ref, ty, (level or 2) + 2)
  local rest = {}
  local drop = {}
  for _, k in ipairs(extra or {}) do drop[k] = true end
  for k, v in pairs(o) do if not drop[k] then rest[k] = v end end
  return rest, o
end

-- MindSpore's sharding (DistributedSampler): shard s of n takes positions s, s+n, s+2n, ...
-- of the (shuffled) sample order, ceil(N/n) of them, wrapping around to the start.
local function shard_count(n, num_shards) return math.ceil(n / num_shards) end

--- The options every dataset shares (batch, repeat, shards, num_samples, device,
-- label_transforms), checked once for all: returns batch, rep, shards, size, device,
-- label_dtype. n is the number of items; errors are raised at the caller's caller.
function Dataset.common_opts(name, opts, n)
  local batch = opts.batch or opts.batch_size or 32
  if type(batch) ~= "number" or batch < 1 or batch ~= math.floor(batch) then
    error(name .. ": batch must be a positive integer, got " .. tostring(batch), 3)
  end
  local rep = opts["repeat"] or 1
  if type(rep) ~= "number" or rep < 1 or rep ~= math.floor(rep) then
    error(name .. ": repeat must be a positive integer, got " .. tostring(rep), 3)
  end
  local shards = Dataset.shard_opts(name, opts, 4)
  local size = shards and shard_count(n, shards[1]) or n
  if opts.num_samples then
    if opts.num_samples < 1 then error(name .. ": num_samples must be positive", 3) end
    size = math.min(size, opts.num_samples)
  end
  local device = opts.device or D.get()
  D.check(device, 3, name .. ": device")
  local label_dtype = opts.label_dtype
  for i, t in ipairs(opts.label_transforms or {}) do
    if type(t) ~= "table" or t.op ~= "TypeCast" then
      error(name .. ": label_transforms[" .. i .. "]: only TypeCast is supported for labels", 3)
    end
    label_dtype = t.dtype
  end
  return batch, rep, shards, size, device, label_dtype
end

--- self._all (0..n-1) and self._order (this shard's, or all) as engine index arrays.
function Dataset.init_order(self, n, size, shards)
  self._all = B.index_array(n)
  for i = 0, n - 1 do self._all[i] = i end
  self._order = self._all
  if shards then
    self._order = B.index_array(size)
    Dataset.fill_shard(self._order, self._all, n, size, shards)
  end
end

--- Dataset.new(images, labels, opts)
-- images: uint8 or float32 Tensor [N,H,W] or [N,H,W,C]; labels: Tensor [N] or [N,K].
-- opts: batch (32), shuffle (true), seed (0), drop_remainder (false), repeat (1),
--   num_samples (all; MindSpore's: the first n of each pass's (shuffled) order),
--   num_shards + shard_id (MindSpore's sharding: positions shard_id, shard_id+num_shards, ...
--   of each pass's order, ceil(N/num_shards) of them, wrapping around),
--   transforms (list, default {} = raw images),
--   label_dtype ("int32") or label_transforms ({TypeCast(dtype)}), name (for messages),
--   device (where batches live; default spore.get_default_device()).
function Dataset.new(images, labels, opts)
  opts = opts or {}
  local name = opts.name or "dataset"
  Dataset.check_opts(name, opts, nil, nil, nil, 2)
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
  local batch, rep, shards, size, device, label_dtype = Dataset.common_opts(name, opts, n)
  local self = setmetatable({
    name = name, images = images, labels = labels, batch_size = batch, repeat_count = rep,
    shuffled = opt_bool(opts.shuffle, true), drop_remainder = opt_bool(opts.drop_remainder, false),
    _size = size, label_dtype = label_dtype or "int32", device = device,
  }, Dataset)
  -- layout: NHWC images (the default) or NCHW batches (from_tensors of a float batch:
  -- detected when dim 2 is 1..4 channels and dim 4 is not, or said by layout = "NCHW")
  local layout = opts.layout
  if layout == nil then
    layout = (#ish == 4 and ish[2] <= 4 and ish[4] > 4) and "NCHW" or "NHWC"
  end
  if layout ~= "NHWC" and layout ~= "NCHW" then
    error(name .. ": layout must be \"NHWC\" or \"NCHW\", got " .. tostring(layout), 2)
  end
  if layout == "NCHW" and #ish ~= 4 then error(name .. ": NCHW images must be [N,C,H,W]", 2) end
  self.layout = layout
  local h, w, c = ish[2], ish[3], ish[4] or 1
  local list = opts.transforms or {}
  if layout == "NCHW" then
    for i, t in ipairs(list) do
      if type(t) ~= "table" or t.op ~= "TypeCast" then
        error(name .. ": transforms[" .. i .. "]: NCHW batches take no image transforms (only TypeCast);"
          .. " give HWC images [N,H,W,C] to transform them", 2)
      end
    end
  end
  local ops, dtype = tf.compile(list, h, w, c)
  self.transforms = list
  self._ops, self._nops, self._opsobj = B.compile_ops(ops)
  self._item_shape = B.out_shape(h, w, c, self._ops, self._nops)
  -- the engine's working type: uint8 images stay uint8 through Resize and the crops (as in
  -- MindSpore), float32 after Rescale / Normalize; TypeCast names the batch dtype
  local _, wdt = require("ffi.image").out_info(h, w, c, self._opsobj,
    images:dtype() == "uint8" and "uint8" or "float32")
  self.image_dtype = dtype or (#ops > 0 and wdt or images:dtype())
  if #ish == 3 and #ops == 0 then self._item_shape = { h, w, 1 } end
  self._rng = require("ffi.tensor").new_rng(opts.seed or 0)
  self._n, self._shards = n, shards
  Dataset.init_order(self, n, size, shards)
  self.seed = opts.seed or 0
  return self
end

--- Validate num_shards/shard_id (both or neither; 0 <= shard_id < num_shards) →
-- {num_shards, shard_id} or nil.
function Dataset.shard_opts(name, opts, level)
  local ns, sid = opts.num_shards, opts.shard_id
  if ns == nil and sid == nil then return nil end
  if ns == nil or sid == nil then
    error(name .. ": num_shards and shard_id must be given together", level)
  end
  if ns < 1 then error(name .. ": num_shards must be positive, got " .. ns, level) end
  if sid < 0 or sid >= ns then
    error(name .. ": shard_id must be in [0, " .. (ns - 1) .. "], got " .. sid, level)
  end
  return { ns, sid }
end

--- order[k] = all[(shard_id + k*num_shards) mod n] for k in [0, size).
function Dataset.fill_shard(order, all, n, size, shards)
  local ns, sid = shards[1], shards[2]
  for k = 0, size - 1 do order[k] = all[(sid + k * ns) % n] end
end

-- Start a pass: reshuffle every sample (seeded) when shuffle is on, then take this
-- shard's positions (or the first `size`).
function Dataset:_new_pass()
  if self.shuffled then B.shuffle(self._all, self._n, self._rng) end
  if self._shards then Dataset.fill_shard(self._order, self._all, self._n, self._size, self._shards) end
end

--- Number of samples (one pass, before repeat).
function Dataset:size() return self._size end
--- Batch size.
function Dataset:get_batch_size() return self.batch_size end
--- Number of batches one ds:batches() loop yields (repeat included).
function Dataset:num_batches()
  local per = self.drop_remainder and math.floor(self._size / self.batch_size) or math.ceil(self._size / self.batch_size)
  return per * self.repeat_count
end
--- MindSpore's name for num_batches().
Dataset.get_dataset_size = Dataset.num_batches
--- MindSpore's name for batches().
Dataset.create_tuple_iterator = function(self, o)
  if o ~= nil then
    error(self.name .. ": create_tuple_iterator takes no options in spore (columns, num_epochs, output_numpy, "
      .. "do_copy are MindSpore's, not implemented): one call iterates one epoch of (images, labels)", 2)
  end
  return self:batches()
end
--- Shape of one transformed image ({C,H,W} or {H,W,C}).
function Dataset:item_shape() return { unpack(self._item_shape) } end

function Dataset:_buffers()
  if not self._img then
    local s = self._item_shape
    self._img = T.empty({ self.batch_size, s[1], s[2], s[3] }, self.image_dtype)
    local lsh = self.labels:shape()
    lsh[1] = self.batch_size
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
  local order, size, bs = self._order, self._size, self.batch_size
  local rep, pass, pos = self.repeat_count, 0, size -- pos = size forces a new pass
  local drop = self.drop_remainder
  return function()
    if pos >= size or (drop and size - pos < bs) then
      if pass >= rep then return nil end
      pass = pass + 1
      pos = 0
      self:_new_pass()
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
  return string.format("%s(%d samples, batch %d, %d batches, image %s %s)", self.name, self._size, self.batch_size,
    self:num_batches(), table.concat(self._item_shape, "x"), self.image_dtype)
end

return Dataset
