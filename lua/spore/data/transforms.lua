--- spore.data.transforms (spore.data.vision) — image transforms with MindSpore's names,
-- arguments and semantics (mindspore.dataset.vision). Each constructor returns a plain
-- description; a dataset compiles its list into the engine's C pipeline (one call per
-- batch; bindings/ffi/data.lua). Images are HWC until HWC2CHW. Arguments are MindSpore's,
-- positionally, or by name in an options table given last (checked by spore.opts: an
-- unknown name is an error naming the nearest one, a MindSpore option spore lacks is
-- refused by name):
--   vision.Decode()                        decode an image file (JPEG/PNG) to HWC uint8 RGB
--   vision.Resize(size[, interpolation])   size: {h, w}, or n = shorter side to n (aspect
--                                          kept, the other side floored); bilinear only.
--                                          On integer images the result is rounded back to
--                                          uint8, as MindSpore (OpenCV) does
--   vision.CenterCrop(size)                central crop; zero-padded when larger than the image
--   vision.RandomCrop(size[, padding[, pad_if_needed[, fill_value[, padding_mode]]]])
--                                          padding: n | {l/r, t/b} | {l, t, r, b};
--                                          padding_mode "constant" | "edge" | "reflect" | "symmetric"
--   vision.RandomResizedCrop(size[, scale={0.08, 1}[, ratio={3/4, 4/3}[, interpolation[, max_attempts=10]]]])
--   vision.RandomCropDecodeResize(...)     Decode + RandomResizedCrop (same arguments)
--   vision.RandomHorizontalFlip([prob=0.5])
--   vision.Normalize(mean, std[, is_hwc=true])  per channel (x - mean[c]) / std[c]
--   vision.HWC2CHW()
--   vision.Rescale(rescale, shift)         x*rescale + shift
--   vision.TypeCast(data_type)             output dtype ("float32", "float16", ...)
-- Random transforms draw from the dataset's seeded generator: one stream per image, so
-- results are reproducible for a seed whatever the thread count.
local check = require("spore.opts").check

local M = {}

local INTERP_REFUSED = "only bilinear (Inter.LINEAR / Inter.BILINEAR) interpolation is implemented"

-- Positional args (MindSpore's order) and an optional trailing options table → one table.
-- names: the positional parameter names; a table with string keys in a position is taken
-- as the options table when it is the last argument given.
local function args(where, names, n, a, refused, types)
  local o = {}
  local last = a[n]
  local kw
  if n > 0 and type(last) == "table" and next(last) ~= nil and last[1] == nil then
    kw = last
    n = n - 1
  end
  if n > #names then
    error(("%s: takes at most %d positional arguments, got %d"):format(where, #names, n), 3)
  end
  for i = 1, n do o[names[i]] = a[i] end
  if kw then
    check(where, kw, names, refused, types, 4)
    for k, v in pairs(kw) do
      if o[k] ~= nil then error(where .. ": '" .. k .. "' given twice (by position and by name)", 3) end
      o[k] = v
    end
  end
  return o
end

local function pack(...) return select("#", ...), { ... } end

local function size_hw(size, where, name)
  name = name or "size"
  local h, w
  if type(size) == "number" then h, w = size, size
  elseif type(size) == "table" and #size == 1 and type(size[1]) == "number" then h, w = size[1], size[1]
  elseif type(size) == "table" and #size == 2 and type(size[1]) == "number" and type(size[2]) == "number" then
    h, w = size[1], size[2]
  else
    error(where .. ": " .. name .. " must be a number or {h, w}, got " .. tostring(size), 3)
  end
  for _, v in ipairs({ h, w }) do
    if v ~= math.floor(v) or v < 1 or v > 16777216 then
      error(where .. ": " .. name .. " must be positive integers, got " .. tostring(v), 3)
    end
  end
  return h, w
end

local function interp_ok(where, interpolation)
  if interpolation == nil then return end
  local s = tostring(interpolation):lower():gsub("^inter%.", "")
  if s ~= "linear" and s ~= "bilinear" then
    error(where .. ": " .. INTERP_REFUSED .. ", got " .. tostring(interpolation), 3)
  end
end

local function pair(v, where, name, lo)
  if type(v) ~= "table" or #v ~= 2 or type(v[1]) ~= "number" or type(v[2]) ~= "number" then
    error(where .. ": " .. name .. " must be a pair {min, max} of numbers", 3)
  end
  if v[1] > v[2] then error(where .. ": " .. name .. " must have min <= max, got {" .. v[1] .. ", " .. v[2] .. "}", 3) end
  if lo and v[1] < lo then error(where .. ": " .. name .. " must be >= " .. lo, 3) end
  return { v[1], v[2] }
end

function M.Decode(...)
  local o = args("Decode", { "to_pil" }, pack(...))
  if o.to_pil then error("Decode: to_pil = true is MindSpore's, but spore does not implement it: spore has no PIL images", 2) end
  return { op = "Decode" }
end

function M.Resize(...)
  local o = args("Resize", { "size", "interpolation" }, pack(...))
  interp_ok("Resize", o.interpolation)
  if type(o.size) == "number" then
    local h = size_hw(o.size, "Resize")
    return { op = "Resize", short = h }
  end
  local h, w = size_hw(o.size, "Resize")
  return { op = "Resize", h = h, w = w }
end

function M.CenterCrop(...)
  local o = args("CenterCrop", { "size" }, pack(...))
  local h, w = size_hw(o.size, "CenterCrop")
  return { op = "CenterCrop", h = h, w = w }
end

local PAD_MODES = { constant = "constant", edge = "edge", reflect = "reflect", symmetric = "symmetric" }

function M.RandomCrop(...)
  local o = args("RandomCrop", { "size", "padding", "pad_if_needed", "fill_value", "padding_mode" }, pack(...))
  local h, w = size_hw(o.size, "RandomCrop")
  local p = o.padding or 0
  local l, t, r, b
  if type(p) == "number" then l, t, r, b = p, p, p, p
  elseif type(p) == "table" and #p == 2 then l, t, r, b = p[1], p[2], p[1], p[2]
  elseif type(p) == "table" and #p == 4 then l, t, r, b = p[1], p[2], p[3], p[4]
  else error("RandomCrop: padding must be n, {left/right, top/bottom} or {left, top, right, bottom}", 2) end
  for _, v in ipairs({ l, t, r, b }) do
    if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
      error("RandomCrop: padding values must be non-negative integers", 2)
    end
  end
  local fill = o.fill_value or 0
  if type(fill) == "number" then fill = { fill, fill, fill } end
  if type(fill) ~= "table" or #fill ~= 3 then error("RandomCrop: fill_value must be n or {r, g, b}", 2) end
  for _, v in ipairs(fill) do
    if type(v) ~= "number" or v < 0 or v > 255 or v ~= math.floor(v) then
      error("RandomCrop: fill_value must be integers in [0, 255]", 2)
    end
  end
  local mode = o.padding_mode or "constant"
  mode = PAD_MODES[tostring(mode):lower():gsub("^border%.", "")]
  if not mode then
    error("RandomCrop: padding_mode must be \"constant\", \"edge\", \"reflect\" or \"symmetric\", got "
      .. tostring(o.padding_mode), 2)
  end
  if o.pad_if_needed ~= nil and type(o.pad_if_needed) ~= "boolean" then
    error("RandomCrop: pad_if_needed must be a boolean", 2)
  end
  return { op = "RandomCrop", h = h, w = w, pad = { l, t, r, b }, pad_if_needed = o.pad_if_needed or false,
    fill = fill, mode = mode }
end

function M.RandomResizedCrop(...)
  local o = args("RandomResizedCrop", { "size", "scale", "ratio", "interpolation", "max_attempts" }, pack(...))
  local h, w = size_hw(o.size, "RandomResizedCrop")
  interp_ok("RandomResizedCrop", o.interpolation)
  local scale = pair(o.scale or { 0.08, 1.0 }, "RandomResizedCrop", "scale", 0)
  local ratio = pair(o.ratio or { 3 / 4, 4 / 3 }, "RandomResizedCrop", "ratio")
  if ratio[1] <= 0 then error("RandomResizedCrop: ratio must be positive", 2) end
  local att = o.max_attempts or 10
  if type(att) ~= "number" or att < 1 or att ~= math.floor(att) then
    error("RandomResizedCrop: max_attempts must be a positive integer", 2)
  end
  return { op = "RandomResizedCrop", h = h, w = w, scale = scale, ratio = ratio, attempts = att }
end

--- MindSpore's RandomCropDecodeResize: Decode then RandomResizedCrop, in one transform.
function M.RandomCropDecodeResize(...)
  local n, a = pack(...)
  local t = M.RandomResizedCrop(unpack(a, 1, n))
  t.op = "RandomCropDecodeResize"
  return t
end

function M.RandomHorizontalFlip(...)
  local o = args("RandomHorizontalFlip", { "prob" }, pack(...))
  local prob = o.prob or 0.5
  if type(prob) ~= "number" or prob < 0 or prob > 1 then error("RandomHorizontalFlip: prob must be in [0, 1]", 2) end
  return { op = "RandomHorizontalFlip", a = prob }
end

function M.Normalize(...)
  local o = args("Normalize", { "mean", "std", "is_hwc" }, pack(...))
  local mean, std = o.mean, o.std
  if type(mean) == "number" then mean = { mean } end
  if type(std) == "number" then std = { std } end
  if type(mean) ~= "table" or type(std) ~= "table" or #mean == 0 or #mean ~= #std or #mean > 4 then
    error("Normalize(mean, std): equal-length lists of 1..4 numbers expected", 2)
  end
  for i = 1, #std do
    if std[i] == 0 then error("Normalize: std[" .. i .. "] is 0", 2) end
  end
  if o.is_hwc == false then
    error("Normalize: is_hwc = false is MindSpore's, but spore does not implement it: normalise before HWC2CHW", 2)
  end
  return { op = "Normalize", mean = mean, std = std }
end

function M.HWC2CHW(...)
  args("HWC2CHW", {}, pack(...))
  return { op = "HWC2CHW" }
end

function M.Rescale(...)
  local o = args("Rescale", { "rescale", "shift" }, pack(...))
  if type(o.rescale) ~= "number" or type(o.shift or 0) ~= "number" then
    error("Rescale(rescale, shift): numbers expected", 2)
  end
  return { op = "Rescale", a = o.rescale, b = o.shift or 0 }
end

function M.TypeCast(...)
  local o = args("TypeCast", { "data_type" }, pack(...))
  local dt = o.data_type
  if type(dt) ~= "string" then error("TypeCast(data_type): a dtype name expected (\"float32\", \"int32\", ...)", 2) end
  return { op = "TypeCast", dtype = dt:lower():gsub("^mstype%.", ""):gsub("^ms%.", "") }
end

local RANDOM = { RandomCrop = true, RandomResizedCrop = true, RandomHorizontalFlip = true, RandomCropDecodeResize = true }
--- true when a transform list draws random numbers.
function M.is_random(list)
  for _, t in ipairs(list) do if RANDOM[t.op] then return true end end
  return false
end

--- Compile a transform list for (h, w, c) source images into the engine's op descriptions
-- (the engine works out sizes and the uint8/float working type per image: a uint8 image
-- stays uint8, rounded, through Resize and the crops, as in MindSpore). Returns ops (list for
-- ffi.data.compile_ops), the output dtype named by TypeCast (or nil), and whether the list
-- starts with Decode (or RandomCropDecodeResize).
function M.compile(list, h, w, c)
  local ops, dtype, decode = {}, nil, false
  for i, t in ipairs(list) do
    if type(t) ~= "table" or not t.op then
      error("transforms[" .. i .. "] is not a transform (use spore.data.vision.*)", 3)
    end
    if dtype and t.op ~= "TypeCast" then
      error("transforms[" .. i .. "]: TypeCast must come last in the image transforms", 3)
    end
    if t.op == "Decode" then
      if i ~= 1 then error("transforms[" .. i .. "]: Decode must come first", 3) end
      decode = true
    elseif t.op == "Resize" then
      -- by the shorter side: the engine computes the other side per image (MindSpore's floor)
      ops[#ops + 1] = { kind = "resize", h = t.h or t.short, w = t.w or t.short, resize_short = t.short ~= nil }
      h, w = t.h, t.w
    elseif t.op == "CenterCrop" then
      ops[#ops + 1] = { kind = "center_crop", h = t.h, w = t.w }
      h, w = t.h, t.w
    elseif t.op == "RandomResizedCrop" or t.op == "RandomCropDecodeResize" then
      if t.op == "RandomCropDecodeResize" then
        if i ~= 1 then error("transforms[" .. i .. "]: RandomCropDecodeResize decodes: it must come first", 3) end
        decode = true
      end
      ops[#ops + 1] = { kind = "random_resized_crop", h = t.h, w = t.w, scale = t.scale, ratio = t.ratio,
        max_attempts = t.attempts }
      h, w = t.h, t.w
    elseif t.op == "Rescale" then
      ops[#ops + 1] = { kind = "rescale", a = t.a, b = t.b }
    elseif t.op == "Normalize" then
      if c and #t.mean ~= 1 and #t.mean ~= c then
        error("Normalize: " .. #t.mean .. " means for " .. c .. "-channel images", 3)
      end
      ops[#ops + 1] = { kind = "normalize", mean = t.mean, std = t.std }
    elseif t.op == "HWC2CHW" then
      ops[#ops + 1] = { kind = "hwc2chw" }
    elseif t.op == "RandomCrop" then
      ops[#ops + 1] = { kind = "random_crop", h = t.h, w = t.w, padding = t.pad, pad_if_needed = t.pad_if_needed,
        fill = t.fill, pad_mode = t.mode }
      h, w = t.h, t.w
    elseif t.op == "RandomHorizontalFlip" then
      ops[#ops + 1] = { kind = "random_hflip", a = t.a }
    elseif t.op == "TypeCast" then
      dtype = t.dtype
    else
      error("transforms[" .. i .. "]: unknown transform " .. tostring(t.op), 3)
    end
  end
  return ops, dtype, decode
end

return M
