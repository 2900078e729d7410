--- spore.data.ImageFolderDataset(dir, opts) — MindSpore's ImageFolderDataset: one class per
-- subfolder of dir, classes in sorted name order (label = position), or labels from
-- class_indexing {name = label} (only the folders it names are read). Files in a class folder
-- are read in sorted name order; extensions (e.g. {".jpg", ".png"}, case-sensitive as
-- MindSpore's) filters them, default: every file. A subfolder inside a class folder is an
-- error (as in MindSpore).
--   local ds = spore.data.ImageFolderDataset(dir, { transforms = spore.data.zoo_pipeline(
--     "imagenet", { train = true, image_size = 224 }), batch = 32, num_parallel_workers = 2 })
--   for images, labels in ds:batches() do ... end   -- float32 [N,3,224,224], int32 [N]
-- Images are decoded (JPEG, PNG) and transformed in C, on worker threads, batch by batch
-- (bindings/ffi/data.lua → the engine's loader). decode: MindSpore's default false means
-- the transforms must start with vision.Decode() (or RandomCropDecodeResize), as in the
-- model zoo; decode = true decodes first. Every image must leave the transforms with one
-- size (end them with a crop or a Resize to {h, w}).
-- Other options as every dataset (batch, shuffle, seed, num_samples, num_shards, shard_id,
-- drop_remainder, repeat, label_dtype, device, name) plus num_parallel_workers (decoding
-- threads) and skip_bad_images (a corrupt file is left out and counted in
-- ds.bad_images instead of raising its one-line error).
local B = require("ffi.data")
local I = require("ffi.image")
local fs = require("ffi.fs")
local T = require("spore.tensor")
local D = require("spore.device")
local tf = require("spore.data.transforms")
local Dataset = require("spore.data.dataset")
local class = require("spore.class")

local FileDataset = class("ImageFolderDataset")
Dataset.refuse_chained(FileDataset)

local EXTRA = { "extensions", "class_indexing", "decode", "num_parallel_workers", "skip_bad_images" }
local REFUSED = { decrypt = "encrypted image folders are not implemented" }
local TYPES = { extensions = "table", class_indexing = "table", decode = "boolean",
  num_parallel_workers = "integer", skip_bad_images = "boolean" }

local function sorted(t) table.sort(t); return t end

local function has_ext(name, exts)
  if not exts then return true end
  for _, e in ipairs(exts) do
    if #name >= #e and name:sub(-#e) == e then return true end
  end
  return false
end

--- Scan dir → files (list of paths), labels (list of ints), class names (index label+1 → name
-- for the sorted order; class_indexing's names otherwise), class_indexing (name → label).
function FileDataset.scan(dir, opts, where)
  where = where or "ImageFolderDataset"
  if type(dir) ~= "string" then error(where .. ": dataset directory (a string) expected", 3) end
  if not fs.is_dir(dir) then error(where .. ": " .. dir .. " is not a readable directory", 3) end
  local exts = opts.extensions
  if exts then
    for i, e in ipairs(exts) do
      if type(e) ~= "string" then error(where .. ": extensions[" .. i .. "] must be a string like \".jpg\"", 3) end
    end
  end
  local classes = {}
  for _, name in ipairs(sorted(fs.list(dir))) do
    if fs.is_dir(dir .. "/" .. name) then classes[#classes + 1] = name end
  end
  local index = {}
  if opts.class_indexing then
    local ci = opts.class_indexing
    local have = {}
    for _, c in ipairs(classes) do have[c] = true end
    local picked = {}
    for name, lab in pairs(ci) do
      if type(name) ~= "string" or type(lab) ~= "number" or lab ~= math.floor(lab) or lab < 0 then
        error(where .. ": class_indexing must map folder names to non-negative integer labels", 3)
      end
      if not have[name] then error(where .. ": class_indexing names '" .. name .. "', which is not a folder of " .. dir, 3) end
      picked[#picked + 1] = name
      index[name] = lab
    end
    classes = sorted(picked)
  else
    for i, c in ipairs(classes) do index[c] = i - 1 end
  end
  if #classes == 0 then error(where .. ": " .. dir .. " has no class subfolders", 3) end
  local files, labels = {}, {}
  for _, c in ipairs(classes) do
    local cdir = dir .. "/" .. c
    for _, f in ipairs(sorted(fs.list(cdir))) do
      if has_ext(f, exts) then
        local p = cdir .. "/" .. f
        if fs.is_dir(p) then
          error(where .. ": " .. p .. " is a folder inside class folder " .. c .. " (one level of class folders expected)", 3)
        end
        files[#files + 1] = p
        labels[#labels + 1] = index[c]
      end
    end
  end
  if #files == 0 then
    error(where .. ": no image files under " .. dir .. (exts and (" with extensions " .. table.concat(exts, ", ")) or ""), 3)
  end
  -- names by label (for predictions): label → folder name
  local names = {}
  for c, lab in pairs(index) do names[lab + 1] = c end
  return files, labels, names, index
end

--- FileDataset.new(files, labels, opts): a dataset over image files (paths) with integer
-- labels. ImageFolderDataset builds one from a folder; predict.lua from the command line.
function FileDataset.new(files, labels, opts, where)
  opts = opts or {}
  local name = opts.name or where or "ImageFolderDataset"
  local n = #files
  if n ~= #labels then error(name .. ": " .. n .. " files but " .. #labels .. " labels", 2) end
  local batch, rep, shards, size, device, label_dtype = Dataset.common_opts(name, opts, n)
  local workers = opts.num_parallel_workers or 2
  if workers < 1 then error(name .. ": num_parallel_workers must be positive, got " .. workers, 2) end
  local list = opts.transforms or {}
  local decode = opts.decode
  if decode == nil then decode = false end
  local ops, dtype, has_decode = tf.compile(list, nil, nil, 3)
  if decode and has_decode then
    error(name .. ": decode = true and a Decode transform: the images would be decoded twice", 2)
  end
  if not decode and not has_decode then
    error(name .. ": decode = false (MindSpore's default) yields the files' bytes, which spore's batches do not hold:"
      .. " start the transforms with vision.Decode() or pass decode = true", 2)
  end
  local self = setmetatable({
    name = name, files = files, batch_size = batch, repeat_count = rep,
    shuffled = opts.shuffle ~= false, drop_remainder = opts.drop_remainder == true,
    _size = size, _n = n, _shards = shards, label_dtype = label_dtype or "int32", device = device,
    transforms = list, workers = workers, skip_bad_images = opts.skip_bad_images == true,
    bad_images = 0, bad_files = {}, seed = opts.seed or 0,
  }, FileDataset)
  self._ops = I.compile_ops(ops)
  -- one output shape whatever the image's size, or the batches could not be stacked
  local s1, dt = I.out_info(480, 640, 3, self._ops, "uint8")
  local s2 = I.out_info(333, 250, 3, self._ops, "uint8")
  if s1[1] ~= s2[1] or s1[2] ~= s2[2] or s1[3] ~= s2[3] then
    error(name .. ": the transforms leave images of varying sizes; end them with Resize({h, w}), CenterCrop,"
      .. " RandomCrop or RandomResizedCrop so that a batch has one shape", 2)
  end
  self._item_shape = s1
  self.image_dtype = dtype or dt
  self._labels = labels
  self.labels = T.tensor(labels, "int32")
  Dataset.init_order(self, n, size, shards)
  self._rng = require("ffi.tensor").new_rng(self.seed)
  self._epoch = 0
  return self
end

--- ImageFolderDataset(dir, opts) (see the module comment).
function FileDataset.from_folder(dir, opts, where)
  where = where or "ImageFolderDataset"
  local rest
  rest, opts = Dataset.check_opts(where, opts, EXTRA, REFUSED, TYPES, 3)
  local files, labels, names, index = FileDataset.scan(dir, opts, where)
  for _, k in ipairs({ "decode", "num_parallel_workers", "skip_bad_images" }) do rest[k] = opts[k] end
  rest.name = rest.name or (where .. "(" .. dir .. ")")
  local ds = FileDataset.new(files, labels, rest, where)
  ds.dir, ds.classes, ds.class_indexing = dir, names, index
  ds._opts = rest
  return ds
end

--- Number of samples (one pass, before repeat).
function FileDataset:size() return self._size end
function FileDataset:get_batch_size() return self.batch_size end
function FileDataset:num_batches()
  local per = self.drop_remainder and math.floor(self._size / self.batch_size) or math.ceil(self._size / self.batch_size)
  return per * self.repeat_count
end
FileDataset.get_dataset_size = FileDataset.num_batches
FileDataset.create_tuple_iterator = Dataset.create_tuple_iterator
function FileDataset:item_shape() return { unpack(self._item_shape) } end
--- The number of classes (folders read).
function FileDataset:num_classes() return #self.classes end
--- MindSpore's get_class_indexing(): {name = label}.
function FileDataset:get_class_indexing()
  local t = {}
  for k, v in pairs(self.class_indexing or {}) do t[k] = v end
  return t
end

--- MindSpore's Dataset.split(sizes, randomize=true): sizes are counts, or fractions summing
-- to 1 (rounded; the first part takes the rounding difference). randomize shuffles the files
-- first with the dataset's seed. Returns one dataset per size, with this dataset's options.
function FileDataset:split(sizes, randomize)
  if type(sizes) ~= "table" or #sizes < 1 then error(self.name .. ": split(sizes): a list of sizes expected", 2) end
  local n = #self.files
  local counts, frac = {}, sizes[1] < 1 or sizes[1] ~= math.floor(sizes[1])
  local total = 0
  for i, s in ipairs(sizes) do
    if type(s) ~= "number" or s <= 0 then error(self.name .. ": split sizes must be positive", 2) end
    counts[i] = frac and math.floor(s * n + 0.5) or s
    total = total + (frac and s or counts[i])
  end
  if frac then
    if math.abs(total - 1) > 1e-9 then error(self.name .. ": split fractions must sum to 1, got " .. total, 2) end
    local sum = 0
    for _, c in ipairs(counts) do sum = sum + c end
    counts[1] = counts[1] + (n - sum)
  elseif total ~= n then
    error(self.name .. ": split sizes must sum to the dataset size " .. n .. ", got " .. total, 2)
  end
  for i, c in ipairs(counts) do
    if c < 1 then error(self.name .. ": split part " .. i .. " would be empty", 2) end
  end
  local idx = B.index_array(n)
  for i = 0, n - 1 do idx[i] = i end
  if randomize ~= false then B.shuffle(idx, n, require("ffi.tensor").new_rng(self.seed)) end
  local lab = self.labels:totable()
  local out, at = {}, 0
  for i, c in ipairs(counts) do
    local f, l = {}, {}
    -- keep each part in the folder's order (sorted positions)
    local pos = {}
    for k = 0, c - 1 do pos[#pos + 1] = tonumber(idx[at + k]) end
    table.sort(pos)
    for _, p in ipairs(pos) do f[#f + 1] = self.files[p + 1]; l[#l + 1] = lab[p + 1] end
    at = at + c
    local o = {}
    for k, v in pairs(self._opts or {}) do o[k] = v end
    o.name = self.name .. "[split " .. i .. "]"
    local d = FileDataset.new(f, l, o)
    d.dir, d.classes, d.class_indexing, d._opts = self.dir, self.classes, self.class_indexing, self._opts
    out[i] = d
  end
  return unpack(out)
end

--- A copy of this dataset's file list with other options (e.g. shuffle = false for
-- evaluation, another transforms list): ds:with{transforms = ..., shuffle = false}.
function FileDataset:with(opts)
  local o = {}
  for k, v in pairs(self._opts or {}) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  local lab = self.labels:totable()
  local d = FileDataset.new(self.files, lab, o)
  d.dir, d.classes, d.class_indexing, d._opts = self.dir, self.classes, self.class_indexing, o
  return d
end

function FileDataset:_new_pass()
  if self.shuffled then B.shuffle(self._all, self._n, self._rng) end
  if self._shards then Dataset.fill_shard(self._order, self._all, self._n, self._size, self._shards) end
end

function FileDataset:_get_loader()
  if not self._loader then
    self._loader = I.loader(self.files, self._labels, self._ops, {
      batch_size = self.batch_size, threads = self.workers, channels = 3, skip_bad = self.skip_bad_images,
      drop_remainder = self.drop_remainder, dtype = self.image_dtype, seed = self.seed })
  end
  return self._loader
end

--- Images skipped so far (skip_bad_images) and the last skip's message.
function FileDataset:skipped()
  if not self._loader then return 0, "" end
  return self._loader:skipped(), self._loader:last_skip()
end

--- Iterate the batches of one pass (× repeat), as Dataset:batches(): images float32
-- [B,C,H,W] (or what the transforms say), labels int32 [B]. Decoding runs ahead on
-- num_parallel_workers threads; the order is reshuffled (seeded) every pass.
function FileDataset:batches()
  local L = self:_get_loader()
  local rep, pass, active = self.repeat_count, 0, false
  return function()
    while true do
      if not active then
        if pass >= rep then return nil end
        pass = pass + 1
        self:_new_pass()
        local order = {}
        for k = 0, self._size - 1 do order[k + 1] = tonumber(self._order[k]) + 1 end
        L:start(order, self._epoch)
        self._epoch = self._epoch + 1
        active = true
      end
      local im, lb = L:next()
      self.bad_images = L:skipped()
      if im then
        if lb:dtype() ~= self.label_dtype then lb = lb:to(self.label_dtype) end
        if self.device ~= "cpu" then
          return im:to(self.device), lb:to(self.device)
        end
        return im, lb
      end
      active = false
    end
  end
end

function FileDataset:__tostring()
  return string.format("%s(%d images, %d classes, batch %d, %d batches, image %s %s)", self.name, self._size,
    self.classes and #self.classes or 0, self.batch_size, self:num_batches(), table.concat(self._item_shape, "x"),
    self.image_dtype)
end

return FileDataset
