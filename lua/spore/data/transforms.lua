--- spore.data.transforms — image transforms (MindSpore's dataset.vision names).
-- Each constructor returns a plain description; a Dataset compiles its list into
-- one engine call per batch (bindings/ffi/data.lua). Images are HWC until HWC2CHW.
--   vision.Resize(size[, interpolation])   size: {h, w}, or n = shorter side to n
--                                          (aspect kept); only "linear"/"bilinear"
--   vision.Rescale(rescale, shift)         x*rescale + shift
--   vision.Normalize(mean, std)            per channel (x - mean[c]) / std[c]
--   vision.HWC2CHW()
--   vision.RandomCrop(size[, padding])     zero padding on every side, then a crop
--   vision.RandomHorizontalFlip([prob=0.5])
--   vision.TypeCast(dtype)                 output dtype ("float32", "float16", ...)
local M = {}

local function hw(size, what)
  if type(size) == "number" then return size, size end
  if type(size) == "table" and type(size[1]) == "number" and type(size[2]) == "number" then
    return size[1], size[2]
  end
  error(what .. ": size must be a number or {h, w}, got " .. tostring(size), 3)
end

local function int_ok(v, what)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 then
    error(what .. ": expected a positive integer, got " .. tostring(v), 3)
  end
end

function M.Resize(size, interpolation)
  local interp = interpolation and tostring(interpolation):lower() or "linear"
  if interp ~= "linear" and interp ~= "bilinear" and interp ~= "inter.linear" then
    error("Resize: only bilinear (Inter.LINEAR) interpolation is implemented, got " .. tostring(interpolation), 2)
  end
  if type(size) == "number" then
    int_ok(size, "Resize")
    return { op = "Resize", short = size }
  end
  local h, w = hw(size, "Resize")
  int_ok(h, "Resize"); int_ok(w, "Resize")
  return { op = "Resize", h = h, w = w }
end

function M.Rescale(rescale, shift)
  if type(rescale) ~= "number" or type(shift or 0) ~= "number" then error("Rescale(rescale, shift): numbers expected", 2) end
  return { op = "Rescale", a = rescale, b = shift or 0 }
end

function M.Normalize(mean, std)
  if type(mean) == "number" then mean = { mean } end
  if type(std) == "number" then std = { std } end
  if type(mean) ~= "table" or type(std) ~= "table" or #mean == 0 or #mean ~= #std or #mean > 4 then
    error("Normalize(mean, std): equal-length lists of 1..4 numbers expected", 2)
  end
  for i = 1, #std do
    if std[i] == 0 then error("Normalize: std[" .. i .. "] is 0", 2) end
  end
  return { op = "Normalize", mean = mean, std = std }
end

function M.HWC2CHW() return { op = "HWC2CHW" } end

function M.RandomCrop(size, padding)
  local h, w = hw(size, "RandomCrop")
  int_ok(h, "RandomCrop"); int_ok(w, "RandomCrop")
  padding = padding or 0
  if type(padding) ~= "number" or padding < 0 or padding ~= math.floor(padding) then
    error("RandomCrop: padding must be a non-negative integer (the same on every side)", 2)
  end
  return { op = "RandomCrop", h = h, w = w, pad = padding }
end

function M.RandomHorizontalFlip(prob)
  prob = prob or 0.5
  if type(prob) ~= "number" or prob < 0 or prob > 1 then error("RandomHorizontalFlip: prob must be in [0, 1]", 2) end
  return { op = "RandomHorizontalFlip", a = prob }
end

function M.TypeCast(dtype)
  if type(dtype) ~= "string" then error("TypeCast(dtype): a dtype name expected (\"float32\", \"int32\", ...)", 2) end
  return { op = "TypeCast", dtype = dtype:lower() }
end

--- Compile a transform list for (h, w, c) source images into the engine's op
-- descriptions. Returns ops (list for ffi.data.compile_ops), out dtype or nil.
function M.compile(list, h, w, c)
  local ops, dtype = {}, nil
  for i, t in ipairs(list) do
    if type(t) ~= "table" or not t.op then
      error("transforms[" .. i .. "] is not a transform (use spore.data.vision.*)", 3)
    end
    if dtype and t.op ~= "TypeCast" then
      error("transforms[" .. i .. "]: TypeCast must come last in the image transforms", 3)
    end
    if t.op == "Resize" then
      local nh, nw = t.h, t.w
      if t.short then -- shorter side to `short`, keeping the aspect ratio (MindSpore)
        if h <= w then nh, nw = t.short, math.floor(w * t.short / h)
        else nh, nw = math.floor(h * t.short / w), t.short end
      end
      ops[#ops + 1] = { kind = "resize", h = nh, w = nw }
      h, w = nh, nw
    elseif t.op == "Rescale" then
      ops[#ops + 1] = { kind = "rescale", a = t.a, b = t.b }
    elseif t.op == "Normalize" then
      if #t.mean ~= 1 and #t.mean ~= c then
        error("Normalize: " .. #t.mean .. " means for " .. c .. "-channel images", 3)
      end
      ops[#ops + 1] = { kind = "normalize", mean = t.mean, std = t.std }
    elseif t.op == "HWC2CHW" then
      ops[#ops + 1] = { kind = "hwc2chw" }
    elseif t.op == "RandomCrop" then
      ops[#ops + 1] = { kind = "random_crop", h = t.h, w = t.w, pad = t.pad }
      h, w = t.h, t.w
    elseif t.op == "RandomHorizontalFlip" then
      ops[#ops + 1] = { kind = "random_hflip", a = t.a }
    elseif t.op == "TypeCast" then
      dtype = t.dtype
    else
      error("transforms[" .. i .. "]: unknown transform " .. tostring(t.op), 3)
    end
  end
  return ops, dtype
end

return M
