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

--- The bf16 GEMM's microkernel (amp_level "O2"): "amx", "avx512" or "portable".
local BF16_KERNELS = { [0] = "portable", "avx512", "amx" }
M.BF16_KERNELS = { portable = 0, avx512 = 1, amx = 2 }
function M.bf16_kernel() return BF16_KERNELS[C.sp_cpu_bf16_kernel()] end
--- the kernels this CPU runs, fastest first
function M.bf16_kernels()
  local t = {}
  for k = 2, 0, -1 do if C.sp_cpu_bf16_kernel_available(k) == 1 then t[#t + 1] = BF16_KERNELS[k] end end
  return t
end
--- select one by name; an unknown name or one this CPU does not run is an error naming it
function M.set_bf16_kernel(name, lvl)
  local k = M.BF16_KERNELS[name]
  if not k then
    error(("bf16 kernel must be one of 'amx', 'avx512', 'portable', got '%s'"):format(tostring(name)), lvl or 2)
  end
  if C.sp_cpu_bf16_set_kernel(k) ~= 0 then error(ffi.string(C.sp_last_error()), lvl or 2) end
end

--- Which implementation runs convolutions on the CPU (sp_cpu_conv_kernel, spore.h): "spore"
-- (the default, spore's own kernels) or "onednn" (oneDNN, where libspore was built with it).
local CONV_KERNELS = { [0] = "spore", "onednn" }
M.CONV_KERNELS = { spore = 0, onednn = 1 }
function M.conv_kernel() return CONV_KERNELS[C.sp_cpu_conv_kernel()] end
function M.conv_kernels()
  local t = {}
  for _, k in ipairs({ 0, 1 }) do
    if C.sp_cpu_conv_kernel_available(k) == 1 then t[#t + 1] = CONV_KERNELS[k] end
  end
  return t
end
--- select one by name; an unknown name or one this build does not have is an error naming it
function M.set_conv_kernel(name, lvl)
  local k = M.CONV_KERNELS[name]
  if not k then
    error(("conv kernel must be one of 'spore', 'onednn', got '%s'"):format(tostring(name)), lvl or 2)
  end
  if C.sp_cpu_conv_set_kernel(k) ~= 0 then error(ffi.string(C.sp_last_error()), lvl or 2) end
end

function M.cuda_device_count() return tonumber(C.sp_cuda_device_count()) end

return M
