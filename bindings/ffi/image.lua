--- bindings/ffi/image.lua — the image, npy and loader engine calls (engine/io: image.c,
-- npy.c, transforms.c, loader.c). The only Lua file that calls those C APIs; what it
-- returns above bindings/ are Tensors, numbers, strings and plain Lua objects (no
-- pointers): compiled op lists and loaders are opaque tables.
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local ffi, C = lib.ffi, lib.C

local function check(status)
  if status ~= 0 then error(ffi.string(C.sp_last_error()), 0) end
end

local M = {}

-- Option tables reaching this file are checked here too (the spore.data layer checks its
-- own with spore.opts): an unknown key is an error naming it, never ignored.
local function strict(where, t, known)
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(("%s: unknown key '%s' (known: %s)"):format(where, tostring(k), table.concat(names, ", ")), 3)
    end
  end
end
local function set(list) local s = {} for _, k in ipairs(list) do s[k] = true end return s end
local OP_KEYS = set { "kind", "h", "w", "pad", "a", "b", "prob", "mean", "std", "padding", "pad_mode", "pad_if_needed",
                      "fill", "scale", "ratio", "max_attempts", "interpolation", "resize_short", "dtype" }
local LOADER_KEYS = set { "batch_size", "threads", "prefetch", "channels", "skip_bad", "drop_remainder", "dtype", "seed" }

local outp = ffi.typeof("sp_tensor*[1]")
local intp = ffi.typeof("int[1]")
local i64arr = ffi.typeof("int64_t[?]")
local i32arr = ffi.typeof("int32_t[?]")
local opsarr = ffi.typeof("sp_img_op[?]")
local strarr = ffi.typeof("const char *[?]")

---------------------------------------------------------------- decoding

--- Decode a JPEG/PNG file → uint8 Tensor [H, W, C]. channels: 0/nil as stored, 1, 3.
function M.decode(path, channels)
  local o = outp()
  check(C.sp_image_decode(o, tostring(path), channels or 0))
  return T.wrap(o[0])
end

--- Decode bytes held in a Lua string; name goes into error messages.
function M.decode_bytes(bytes, name, channels)
  local o = outp()
  check(C.sp_image_decode_mem(o, bytes, #bytes, name or "<bytes>", channels or 0))
  return T.wrap(o[0])
end

--- Header only → height, width (after EXIF orientation), stored channels (1 or 3).
function M.probe(path)
  local h, w, c = intp(), intp(), intp()
  check(C.sp_image_probe(tostring(path), h, w, c))
  return h[0], w[0], c[0]
end

--- The decoders' pixel-count limit (nil or < 1 restores the default).
function M.set_max_pixels(n) C.sp_config_set_image_max_pixels(n or 0) end
function M.max_pixels() return tonumber(C.sp_config_image_max_pixels()) end

---------------------------------------------------------------- npy

--- Read a NumPy .npy file → Tensor.
function M.npy_load(path)
  local o = outp()
  check(C.sp_npy_load(o, tostring(path)))
  return T.wrap(o[0])
end

--- Write a Tensor as a .npy file (atomically).
function M.npy_save(path, t)
  check(C.sp_npy_save(tostring(path), T.handle(t)))
end

---------------------------------------------------------------- transforms

local KIND = {
  resize = C.SP_IMG_RESIZE, rescale = C.SP_IMG_RESCALE, normalize = C.SP_IMG_NORMALIZE,
  hwc2chw = C.SP_IMG_HWC2CHW, random_crop = C.SP_IMG_RANDOM_CROP, random_hflip = C.SP_IMG_RANDOM_HFLIP,
  center_crop = C.SP_IMG_CENTER_CROP, random_resized_crop = C.SP_IMG_RANDOM_RESIZED_CROP,
  typecast = C.SP_IMG_TYPECAST, random_vflip = C.SP_IMG_RANDOM_VFLIP,
}
local INTERP = { linear = C.SP_INTERP_LINEAR, bilinear = C.SP_INTERP_LINEAR, nearest = C.SP_INTERP_NEAREST }
local BORDER = { constant = C.SP_BORDER_CONSTANT, edge = C.SP_BORDER_EDGE, reflect = C.SP_BORDER_REFLECT,
                 symmetric = C.SP_BORDER_SYMMETRIC }
M.kinds, M.interpolations, M.border_modes = KIND, INTERP, BORDER

local function fill4(dst, v, default)
  for c = 0, 3 do
    if type(v) == "table" then dst[c] = v[c + 1] or v[#v] or default
    else dst[c] = v or default end
  end
end

--- Compile op descriptions into an opaque op list. Each op: { kind = "resize" |
-- "rescale" | "normalize" | "hwc2chw" | "random_crop" | "random_hflip" | "random_vflip" |
-- "center_crop" | "random_resized_crop" | "typecast", h =, w =, resize_short = bool,
-- interpolation = "linear" | "nearest", a =, b = (rescale: x*a+b), prob = (flips),
-- mean = {..}, std = {..}, pad = n, padding = {l, t, r, b}, pad_mode = "constant" |
-- "edge" | "reflect" | "symmetric", pad_if_needed = bool, fill = n | {r, g, b},
-- scale = {lo, hi}, ratio = {lo, hi}, max_attempts = n, dtype = "float32" ... }.
function M.compile_ops(list)
  local n = #list
  local arr = opsarr(math.max(n, 1))
  for i, op in ipairs(list) do
    strict("image op " .. i, op, OP_KEYS)
    local o = arr[i - 1]
    local k = KIND[op.kind]
    if not k then error("unknown image op '" .. tostring(op.kind) .. "'", 2) end
    o.kind = k
    o.h, o.w, o.pad = op.h or 0, op.w or 0, op.pad or 0
    o.a, o.b = op.a or op.prob or 0, op.b or 0
    fill4(o.mean, op.mean, 0)
    fill4(o.std, op.std, 1)
    if op.padding then for c = 0, 3 do o.padding[c] = op.padding[c + 1] or 0 end end
    if op.pad_mode ~= nil then
      local b = BORDER[op.pad_mode]
      if not b then error("unknown padding mode '" .. tostring(op.pad_mode) .. "' (constant, edge, reflect, symmetric)", 2) end
      o.pad_mode = b
    end
    o.pad_if_needed = op.pad_if_needed and 1 or 0
    fill4(o.fill, op.fill, 0)
    local sc, ra = op.scale or { 0.08, 1.0 }, op.ratio or { 3 / 4, 4 / 3 }
    o.scale[0], o.scale[1] = sc[1], sc[2]
    o.ratio[0], o.ratio[1] = ra[1], ra[2]
    o.max_attempts = op.max_attempts or 10
    if op.interpolation ~= nil then
      local m = INTERP[op.interpolation]
      if not m then error("unknown interpolation '" .. tostring(op.interpolation) .. "' (linear, nearest)", 2) end
      o.interp = m
    end
    o.resize_short = op.resize_short and 1 or 0
    o.dtype = op.dtype and T.dtype_code(op.dtype) or 0
  end
  return { arr = arr, n = n }
end

--- Output shape {d1, d2, d3} and dtype name of the ops for one (h, w, c) image of
-- src_dtype ("uint8" default, or "float32").
function M.out_info(h, w, c, ops, src_dtype)
  local s = i64arr(3)
  local dt = intp()
  check(C.sp_image_out_info(h, w, c, T.dtype_code(src_dtype or "uint8"), ops.arr, ops.n, s, dt))
  return { tonumber(s[0]), tonumber(s[1]), tonumber(s[2]) }, T.dtypes[dt[0]]
end

--- One image (uint8/float32 Tensor [H, W, C] or [H, W]) through the ops → new Tensor.
function M.transform(img, ops, seed)
  local o = outp()
  check(C.sp_image_transform(o, T.handle(img), ops.arr, ops.n, seed or 0))
  return T.wrap(o[0])
end

--- The loader's per-image seed for (seed, epoch, index) (an exact uint64 as a cdata number).
function M.image_seed(seed, epoch, index) return C.sp_image_seed(seed or 0, epoch or 0, index or 0) end

--- Batch over an in-memory uint8/float32 [N,H,W(,C)] Tensor: out[i] = ops(src[idx[i]]).
-- idx: a Lua list of 0-based indices; rng: a uint64 state from Tensor.new_rng (advanced).
function M.image_batch(out, src, idx, ops, rng)
  local n = #idx
  local ia = i64arr(math.max(n, 1))
  for i = 1, n do ia[i - 1] = idx[i] end
  check(C.sp_image_batch(T.handle(out), T.handle(src), ia, n, ops.arr, ops.n, rng))
end

---------------------------------------------------------------- loader

local Loader = {}
Loader.__index = Loader

--- A threaded loader over files. paths: list of strings; labels: list of integers (or
-- nil: all 0); ops: from compile_ops; cfg: { batch_size, threads = 2, prefetch = 2,
-- channels = 0, skip_bad = false, drop_remainder = false, dtype = nil (the pipeline's),
-- seed = 0 }.
function M.loader(paths, labels, ops, cfg)
  cfg = cfg or {}
  strict("image loader", cfg, LOADER_KEYS)
  local n = #paths
  local pa = strarr(math.max(n, 1))
  local keep = {}
  for i = 1, n do
    local s = tostring(paths[i])
    keep[i] = s
    pa[i - 1] = s
  end
  local la = i32arr(math.max(n, 1))
  if labels then
    if #labels ~= n then error(("loader: %d labels for %d paths"):format(#labels, n), 2) end
    for i = 1, n do la[i - 1] = labels[i] end
  end
  local c = ffi.new("sp_loader_config")
  c.batch_size = cfg.batch_size or 32
  c.threads = cfg.threads or 2
  c.prefetch = cfg.prefetch or 2
  c.channels = cfg.channels or 0
  c.skip_bad = cfg.skip_bad and 1 or 0
  c.drop_remainder = cfg.drop_remainder and 1 or 0
  c.out_dtype = cfg.dtype and T.dtype_code(cfg.dtype) or -1
  c.seed = cfg.seed or 0
  local o = ffi.new("sp_loader*[1]")
  check(C.sp_loader_new(o, pa, labels and la or nil, n, ops.arr, ops.n, c))
  local h = ffi.gc(o[0], C.sp_loader_free)
  return setmetatable({ h = h, n = n, epoch = -1 }, Loader)
end

local function lh(self)
  if not self.h then error("loader: used after close()", 3) end
  return self.h
end

--- Start an epoch over order (a Lua list of 1-based positions into paths; nil: all in
-- order) with epoch number epoch (default: previous + 1).
function Loader:start(order, epoch)
  local h = lh(self)
  self.epoch = epoch or (self.epoch + 1)
  if order then
    local k = #order
    local oa = i64arr(math.max(k, 1))
    for i = 1, k do oa[i - 1] = order[i] - 1 end
    check(C.sp_loader_start(h, oa, k, self.epoch))
  else
    check(C.sp_loader_start(h, nil, self.n, self.epoch))
  end
end

--- The next batch → images Tensor [B, ...], labels int32 Tensor [B]; nil at the end.
function Loader:next()
  local h = lh(self)
  local im, lb = outp(), outp()
  check(C.sp_loader_next(h, im, lb))
  if im[0] == nil then return nil end
  return T.wrap(im[0]), T.wrap(lb[0])
end

--- Images skipped (skip_bad) so far, and the last skip's message ("" if none).
function Loader:skipped() return tonumber(C.sp_loader_skipped(lh(self))) end
function Loader:last_skip() return ffi.string(C.sp_loader_last_skip(lh(self))) end

--- Stop the workers now (also done by the GC).
function Loader:close()
  if self.h then
    C.sp_loader_free(ffi.gc(self.h, nil))
    self.h = nil
  end
end

return M
