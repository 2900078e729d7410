--- bindings/ffi/ckpt.lua — the only Lua file that calls the C checkpoint API
-- (sp_ckpt_* in engine/include/spore.h). Plain Lua values go in and out:
--   read(path, opts)   -> { format=, entries = {{name, type, dtype, shape, nbytes, tensor=Tensor|nil, bytes=string|nil}...},
--                           crc = {present=, verified=, value=}, encryption=, metadata= }
--   write(path, items, opts) where items = {{name=, tensor=Tensor} | {name=, type=, shape=, bytes=}}
-- Errors are raised as one-line messages from the engine (naming file and tensor).
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local ffi, C = lib.ffi, lib.C

local M = {}
local FORMATS = { auto = C.SP_CKPT_AUTO, ckpt = C.SP_CKPT_PROTO, safetensors = C.SP_CKPT_SAFETENSORS, pth = C.SP_CKPT_PTH }
M.FORMATS = FORMATS

local function fail(ctx)
  error((ctx and ctx .. ": " or "") .. ffi.string(C.sp_last_error()), 0)
end

local function format_code(f)
  if f == nil then return C.SP_CKPT_AUTO end
  local c = FORMATS[f]
  if not c then error("unknown checkpoint format '" .. tostring(f) .. "' (expected \"ckpt\", \"safetensors\" or \"pth\")", 0) end
  return c
end
M.format_code = format_code

--- Open and parse a checkpoint; every entry's tensor is created (views for safetensors).
-- opts: format ("ckpt"|"safetensors"|"pth"|nil auto), crc_check (bool), dec_key (string), dec_mode (string),
--       lazy (bool: do not create tensors; call entry:tensor() later; keep the result alive).
function M.read(path, opts)
  opts = opts or {}
  local out = ffi.new("sp_ckpt*[1]")
  local key = opts.dec_key
  local st = C.sp_ckpt_open(out, path, format_code(opts.format), opts.crc_check and C.SP_CKPT_CRC or 0,
    key, key and #key or 0, opts.dec_mode)
  if st ~= 0 then fail() end
  local c = ffi.gc(out[0], C.sp_ckpt_close)
  local fc = tonumber(C.sp_ckpt_format(c))
  local res = { entries = {}, format = fc == C.SP_CKPT_SAFETENSORS and "safetensors" or fc == C.SP_CKPT_PTH and "pth" or "ckpt" }
  local crcv = ffi.new("uint32_t[1]")
  local cs = C.sp_ckpt_crc(c, crcv)
  res.crc = { present = cs >= 1, verified = cs == 2, value = cs >= 1 and tonumber(crcv[0]) or nil }
  res.encryption = ffi.string(C.sp_ckpt_encryption(c))
  res.metadata = ffi.string(C.sp_ckpt_metadata(c))
  local shp = ffi.new("int64_t[8]")
  local tp = ffi.new("sp_tensor*[1]")
  for i = 0, tonumber(C.sp_ckpt_count(c)) - 1 do
    local nd = C.sp_ckpt_shape(c, i, shp)
    local shape = {}
    for d = 0, nd - 1 do shape[d + 1] = tonumber(shp[d]) end
    local dt = C.sp_ckpt_dtype(c, i)
    local e = { name = ffi.string(C.sp_ckpt_name(c, i)), type = ffi.string(C.sp_ckpt_type(c, i)), shape = shape,
      nbytes = tonumber(C.sp_ckpt_nbytes(c, i)), dtype = dt >= 0 and T.dtypes[dt] or nil }
    if dt < 0 then
      local p = C.sp_ckpt_bytes(c, i)
      e.bytes = p ~= nil and ffi.string(p, e.nbytes) or ""
    elseif not opts.lazy then
      if C.sp_ckpt_tensor(c, i, tp) ~= 0 then fail() end
      e.tensor = T.wrap(tp[0])
    else
      local idx = i
      function e.tensor_fn()
        if C.sp_ckpt_tensor(c, idx, tp) ~= 0 then fail() end
        return T.wrap(tp[0])
      end
    end
    res.entries[#res.entries + 1] = e
  end
  if opts.lazy then res._handle = c else C.sp_ckpt_close(ffi.gc(c, nil)) end
  return res
end

--- Write items atomically (.pth is read-only): a locked, unique temp file, fsync, rename.
-- opts: format ("ckpt"|"safetensors"), crc_check, enc_key, enc_mode, slice (bytes, tests only).
function M.write(path, items, opts)
  opts = opts or {}
  if opts.format == "pth" then error("writing .pth is not supported (write .ckpt or .safetensors)", 0) end
  local fmt = format_code(opts.format or "ckpt")
  local out = ffi.new("sp_ckpt_writer*[1]")
  local key = opts.enc_key
  if C.sp_ckpt_writer_open(out, path, fmt, opts.crc_check and C.SP_CKPT_CRC or 0, key, key and #key or 0,
      opts.enc_mode) ~= 0 then fail() end
  local w = out[0]
  if opts.slice then C.sp_ckpt_writer_set_slice(w, opts.slice) end
  local shp = ffi.new("int64_t[8]")
  -- any Lua error between open and commit aborts the writer: it holds a lock and a temp file
  local ok, err = pcall(function()
    for _, it in ipairs(items) do
      local st
      if it.tensor then
        st = C.sp_ckpt_writer_add(w, it.name, T.handle(it.tensor))
      else
        for d, v in ipairs(it.shape or {}) do shp[d - 1] = v end
        st = C.sp_ckpt_writer_add_raw(w, it.name, it.type, #(it.shape or {}), shp, it.bytes, #it.bytes)
      end
      if st ~= 0 then error(ffi.string(C.sp_last_error()), 0) end
      if opts.on_item then opts.on_item(it) end
    end
  end)
  if not ok then
    C.sp_ckpt_writer_abort(w)
    error(err, 0)
  end
  if C.sp_ckpt_writer_commit(w) ~= 0 then fail() end
  return path
end

--- Return the reader's cached content blocks to the system; bytes freed.
function M.release_cache() return tonumber(C.sp_ckpt_release_cache()) end

function M.crc32(s, crc) return tonumber(C.sp_crc32(crc or 0, s, #s)) end

return M
