--- bindings/ffi/config.lua — engine-wide settings and counters (sp_config_*, sp_mem_stats,
-- sp_cuda_device_count in engine/include/spore.h). The engine reads no environment
-- variables; lua/spore maps SPORE_NN_OMP / SPORE_CKPT_CACHE_MB / SPORE_NO_THP onto these.
local lib = require("ffi.lib")
local ffi, C = lib.ffi, lib.C

local M = {}

--- OpenMP regions in the nn kernels (false by default).
function M.set_nn_omp(on) C.sp_config_set_nn_omp(on and 1 or 0) end
function M.nn_omp() return C.sp_config_nn_omp() ~= 0 end

--- Cap, in bytes, on the .ckpt reader's cache of freed content blocks, or "auto" (the
-- default: the most bytes of content blocks the process has had at once, at least 256 MiB
-- and at most half the machine's memory; see sp_config_set_ckpt_cache).
function M.set_ckpt_cache(bytes)
  if bytes == "auto" then C.sp_config_set_ckpt_cache(0xffffffffffffffffULL); return end
  if type(bytes) ~= "number" or bytes < 0 or bytes ~= math.floor(bytes) or bytes >= 2 ^ 53 then
    error("ckpt cache size must be \"auto\" or a whole number of bytes >= 0, got " .. tostring(bytes), 2)
  end
  C.sp_config_set_ckpt_cache(bytes)
end
--- The cap in force, in bytes (automatic or set).
function M.ckpt_cache() return tonumber(C.sp_config_ckpt_cache()) end
--- Whether the cap is automatic.
function M.ckpt_cache_auto() return C.sp_config_ckpt_cache_auto() ~= 0 end

--- Transparent huge pages for the .ckpt reader's big content blocks (true by default).
function M.set_ckpt_thp(on) C.sp_config_set_ckpt_thp(on and 1 or 0) end
function M.ckpt_thp() return C.sp_config_ckpt_thp() ~= 0 end

--- Engine memory counters over every device: live bytes, peak bytes, live allocations.
function M.mem_stats()
  local live, peak, n = ffi.new("int64_t[1]"), ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
  C.sp_mem_stats(live, peak, n)
  return tonumber(live[0]), tonumber(peak[0]), tonumber(n[0])
end

--- The kernel set OpenBLAS runs ("SkylakeX", "Cooperlake", "Haswell", "Prescott"...).
function M.blas_core() return ffi.string(C.sp_blas_core()) end
function M.blas_threading() return ffi.string(C.sp_blas_threading()) end
function M.blas_thread_timeout()
  local n = C.sp_blas_thread_timeout()
  if n < 0 then return nil end
  return n
end

-- A selectable kernel family: names[i] is engine number i - 1; listed in `order`. Gives
-- get() -> name, list() -> the available names in order, set(name, lvl) (an unknown name,
-- or one the engine refuses, is an error naming it).
local function selector(what, names, order, get, available, set)
  local num = {}
  for i, n in ipairs(names) do num[n] = i - 1 end
  local quoted = {}
  for _, k in ipairs(order) do quoted[#quoted + 1] = "'" .. names[k + 1] .. "'" end
  local s = {}
  function s.get() return names[get() + 1] end
  function s.list()
    local t = {}
    for _, k in ipairs(order) do if available(k) == 1 then t[#t + 1] = names[k + 1] end end
    return t
  end
  function s.set(name, lvl)
    local k = num[name]
    if not k then
      error(("%s must be one of %s, got '%s'"):format(what, table.concat(quoted, ", "), tostring(name)), lvl or 2)
    end
    if set(k) ~= 0 then error(ffi.string(C.sp_last_error()), lvl or 2) end
  end
  return s
end

--- The bf16 GEMM's microkernel (amp_level "O2"): "amx", "avx512" or "portable"; the kernels
-- this CPU runs, fastest first; select one (one this CPU does not run is an error).
local bf16 = selector("bf16 kernel", { "portable", "avx512", "amx" }, { 2, 1, 0 }, C.sp_cpu_bf16_kernel,
  C.sp_cpu_bf16_kernel_available, C.sp_cpu_bf16_set_kernel)
M.bf16_kernel, M.bf16_kernels, M.set_bf16_kernel = bf16.get, bf16.list, bf16.set

--- Which implementation runs convolutions on the CPU (sp_cpu_conv_kernel, spore.h): "auto"
-- (the default where libspore has oneDNN: oneDNN for the channels-last convolutions of
-- spore.nn's chains, eval and training, spore's own kernels for the rest), "spore" (spore's own kernels;
-- the default without oneDNN) or "onednn" (oneDNN for every layer).
local conv = selector("conv kernel", { "spore", "onednn", "auto" }, { 2, 0, 1 }, C.sp_cpu_conv_kernel,
  C.sp_cpu_conv_kernel_available, C.sp_cpu_conv_set_kernel)
M.conv_kernel, M.conv_kernels, M.set_conv_kernel = conv.get, conv.list, conv.set

function M.cuda_device_count() return tonumber(C.sp_cuda_device_count()) end

return M
