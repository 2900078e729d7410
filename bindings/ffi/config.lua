--- bindings/ffi/config.lua — engine-wide settings and counters (sp_config_*, sp_mem_stats,
-- sp_cuda_device_count in engine/include/spore.h). The engine reads no environment
-- variables; lua/spore maps SPORE_NN_OMP / SPORE_CKPT_CACHE_MB / SPORE_NO_THP onto these.
local lib = require("ffi.lib")
local ffi, C = lib.ffi, lib.C

local M = {}

--- OpenMP regions in the nn kernels (false by default).
function M.set_nn_omp(on) C.sp_config_set_nn_omp(on and 1 or 0) end
function M.nn_omp() return C.sp_config_nn_omp() ~= 0 end

--- Cap, in bytes, on the .ckpt reader's cache of freed content blocks (256 MiB by default).
function M.set_ckpt_cache(bytes)
  if type(bytes) ~= "number" or bytes < 0 or bytes ~= math.floor(bytes) then
    error("ckpt cache size must be a whole number of bytes >= 0, got " .. tostring(bytes), 2)
  end
  C.sp_config_set_ckpt_cache(bytes)
end
function M.ckpt_cache() return tonumber(C.sp_config_ckpt_cache()) end

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

function M.cuda_device_count() return tonumber(C.sp_cuda_device_count()) end

return M
