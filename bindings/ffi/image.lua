--- bindings/ffi/image.lua — the engine's image calls: JPEG/PNG decoding, .npy files, the
-- pipeline's output info and the threaded file loader (engine/io/image.c, npy.c, loader.c).
-- The only Lua that calls them; errors are the engine's one-line messages (they name the file).
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local ffi, C = lib.ffi, lib.C

local function check(status)
  if status ~= 0 then error(ffi.string(C.sp_last_error()), 0) end
end

local M = {}

local outp = ffi.typeof("sp_tensor*[1]")
local i64arr = ffi.typeof("int64_t[?]")
local i32arr = ffi.typeof("int32_t[?]")
local intp = ffi.typeof("int[1]")
local strarr = ffi.typeof("const char*[?]")

--- Decode a JPEG/PNG file → uint8 Tensor [H,W,C]. channels: 0 as stored, 1, 3 (default 3, RGB
-- as MindSpore's Decode).
function M.decode(path, channels)
  local o = outp()
  check(C.sp_image_decode(o, path, channels or 3))
  return T.wrap(o[0])
end

--- Header only: h, w (after EXIF orientation), stored channels.
function M.probe(path)
  local h, w, c = intp(), intp(), intp()
  check(C.sp_image_probe(path, h, w, c))
  return h[0], w[0], c[0]
end

--- Load a .npy file → Tensor.
function M.npy_load(path)
  local o = outp()
  check(C.sp_npy_load(o, path))
  return T.wrap(o[0])
end

--- Save a Tensor as .npy (atomically).
function M.npy_save(path, t)
  check(C.sp_npy_save(path, T.handle(t)))
end

--- Shape {d1, d2, d3} and dtype name of the pipeline's output for an (h, w, c) image of
-- src_dtype ("uint8" | "float32").
function M.out_info(h, w, c, src_dtype, ops, nops)
  local s, dt = i64arr(3), intp()
  check(C.sp_image_out_info(h, w, c, T.dtype_code(src_dtype), ops, nops, s, dt))
  return { tonumber(s[0]), tonumber(s[1]), tonumber(s[2]) }, ffi.string(C.sp_dtype_name(dt[0]))
end

--- One image through the pipeline (random ops from seed) → owned Tensor.
function M.transform(img, ops, nops, seed)
  local o = outp()
  check(C.sp_image_transform(o, T.handle(img), ops, nops, seed or 0))
  return T.wrap(o[0])
end

--- The loader: files + int32 labels → batches, decoded and transformed on threads.
-- cfg: batch, threads, prefetch, channels, skip_bad, drop_remainder, out_dtype (name or nil),
-- seed. Returns a handle table with :start(order_cdata, count, epoch), :next() → images,
-- labels Tensors (nil at the end of an epoch), :skipped() → count, last message.
function M.loader(paths, labels, ops, nops, cfg)
  local n = #paths
  local pa = strarr(math.max(n, 1))
  for i = 1, n do pa[i - 1] = paths[i] end
  local la = i32arr(math.max(n, 1))
  for i = 1, n do la[i - 1] = labels[i] end
  local c = ffi.new("sp_loader_config")
  c.batch_size = cfg.batch
  c.threads = cfg.threads or 2
  c.prefetch = cfg.prefetch or 0
  c.channels = cfg.channels or 3
  c.skip_bad = cfg.skip_bad and 1 or 0
  c.drop_remainder = cfg.drop_remainder and 1 or 0
  c.out_dtype = cfg.out_dtype and T.dtype_code(cfg.out_dtype) or -1
  c.seed = cfg.seed or 0
  local o = ffi.new("sp_loader*[1]")
  check(C.sp_loader_new(o, pa, la, n, ops, nops, c))
  local h = ffi.gc(o[0], C.sp_loader_free)
  local L = {}
  function L.start(_, order, count, epoch) check(C.sp_loader_start(h, order, count, epoch)) end
  local im, lb = outp(), outp()
  function L.next()
    check(C.sp_loader_next(h, im, lb))
    if im[0] == nil then return nil end
    return T.wrap(im[0]), T.wrap(lb[0])
  end
  function L.skipped() return tonumber(C.sp_loader_skipped(h)), ffi.string(C.sp_loader_last_skip(h)) end
  function L.free() if h ~= nil then C.sp_loader_free(ffi.gc(h, nil)); h = nil end end
  return L
end

return M
