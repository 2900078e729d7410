--- bindings/ffi/data.lua — the dataset engine calls (engine/io: idx, cifar,
-- transforms) and the two libc calls the training loop needs (a monotonic clock
-- and isatty). The only Lua file that calls the datasets C API.
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local ffi, C = lib.ffi, lib.C

-- Raise the engine's message as it is: it already names the file and the
-- expectation, so no "file:line:" position is prepended.
local function check(status)
  if status ~= 0 then error(ffi.string(C.sp_last_error()), 0) end
end

local M = {}

local outp = ffi.typeof("sp_tensor*[1]")
local opsarr = ffi.typeof("sp_img_op[?]")
local i64arr = ffi.typeof("int64_t[?]")
M.index_array = function(n) return i64arr(math.max(n, 1)) end

--- Decode an idx file (plain or .gz) → Tensor (uint8 [N,H,W] for MNIST images,
-- uint8 [N] for labels). Raises with the engine's message (file + expectation).
function M.idx_load(path)
  local o = outp()
  check(C.sp_idx_load(o, path))
  return T.wrap(o[0])
end

--- Decode one CIFAR binary batch → images uint8 [N,32,32,3], labels int32 [N].
function M.cifar_load(path, label_bytes)
  local im, lb = outp(), outp()
  check(C.sp_cifar_load(im, lb, path, label_bytes or 1))
  return T.wrap(im[0]), T.wrap(lb[0])
end

--- Shuffle an int64_t[n] index array in place from a uint64_t[1] state.
function M.shuffle(idx, n, state)
  check(C.sp_shuffle_indices(idx, n, state))
end

--- dst[i] = src[idx[i]] (rows), converting dtype.
function M.gather_rows(dst, src, idx, n)
  check(C.sp_gather_rows(T.handle(dst), T.handle(src), idx, n))
end

--- Compile a list of op descriptions (spore.data.transforms.compile; the fields of
-- ffi.image.compile_ops) into a C op array; returns cdata array, count.
function M.compile_ops(list)
  local ops = require("ffi.image").compile_ops(list)
  return ops.arr, ops.n, ops
end

--- Output shape {d1, d2, d3} of the compiled ops for an (h, w, c) image.
function M.out_shape(h, w, c, ops, nops)
  local s = i64arr(3)
  check(C.sp_image_out_shape(h, w, c, ops, nops, s))
  return { tonumber(s[0]), tonumber(s[1]), tonumber(s[2]) }
end

--- One batch: out[i] = ops(src[idx[i]]).
function M.image_batch(out, src, idx, n, ops, nops, rng)
  check(C.sp_image_batch(T.handle(out), T.handle(src), idx, n, ops, nops, rng))
end

-- libc: monotonic clock and isatty, under private names (asm aliases) so that
-- another module declaring clock_gettime/isatty cannot clash with these.
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } sp_data_timespec;
  int sp_data_clock_gettime(int clk_id, sp_data_timespec *tp) __asm__("clock_gettime");
  int sp_data_isatty(int fd) __asm__("isatty");
]])
local ts = ffi.new("sp_data_timespec")
--- Monotonic time in seconds (float).
function M.now()
  ffi.C.sp_data_clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
--- true when file descriptor fd (default 1, stdout) is a terminal.
function M.isatty(fd)
  local ok, r = pcall(function() return ffi.C.sp_data_isatty(fd or 1) end)
  return ok and r == 1
end

return M
