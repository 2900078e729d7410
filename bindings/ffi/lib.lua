--- bindings/ffi/lib.lua — loads libspore and its cdefs; the one place that holds `ffi.C`.
-- Returns { C = <library namespace>, check = fn(status, context?) , ffi = ffi }.
-- Library search: $SPORE_LIB, then <root>/build/libspore.so, then an installed
-- <prefix>/lib/libspore.so next to the Lua tree, then the system linker path.
local ffi = require("ffi")

local M = { ffi = ffi }

local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".")

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local cdef_path = here .. "/cdef.lua"
local chunk = loadfile(cdef_path)
if not chunk then
  error("spore: " .. cdef_path .. " is missing: run `make` to generate the FFI cdefs", 0)
end
ffi.cdef(chunk())

-- OpenBLAS picks its kernels once, when it loads (with libspore, below), from the CPU's
-- model number; 0.3.21 (Debian 12) does not know newer AVX-512 Xeons (Sapphire Rapids and
-- later) and falls back to its SSE3 "Prescott" kernels: SGEMM measured at 40 GFLOP/s a
-- core instead of 210 (SkylakeX), a ResNet50 training step 1.8x slower. Unless the user
-- chose (OPENBLAS_CORETYPE set, even empty), a CPU whose /proc/cpuinfo lists the AVX-512
-- subsets of OpenBLAS's SkylakeX kernels gets those named (Cooperlake, the same SGEMM plus
-- bf16 kernels, where AVX512_BF16 is there too); OpenBLAS checks the name against the CPU
-- itself. spore.config().blas_core reports the outcome.
local function name_blas_core()
  if os.getenv("OPENBLAS_CORETYPE") ~= nil or ffi.os ~= "Linux" or ffi.arch ~= "x64" then return end
  local f = io.open("/proc/cpuinfo", "r")
  if not f then return end
  local flags
  for line in f:lines() do
    flags = line:match("^flags%s*:%s*(.*)$")
    if flags then break end
  end
  f:close()
  if not flags then return end
  local have = {}
  for w in flags:gmatch("%S+") do have[w] = true end
  if not (have.avx512f and have.avx512bw and have.avx512dq and have.avx512vl and have.avx512cd) then return end
  pcall(ffi.cdef, "int setenv(const char *name, const char *value, int overwrite);")
  ffi.C.setenv("OPENBLAS_CORETYPE", have.avx512_bf16 and "Cooperlake" or "SkylakeX", 0)
end

local function load_lib()
  -- A C host that links libspore statically (with -rdynamic) sets SPORE_LIB_SELF.
  if rawget(_G, "SPORE_LIB_SELF") then return ffi.C, "host process" end
  local tried = {}
  local env = os.getenv("SPORE_LIB")
  local cands = {}
  if env and env ~= "" then cands[#cands + 1] = env end
  cands[#cands + 1] = here .. "/../../build/libspore.so"
  cands[#cands + 1] = here .. "/../../../../lib/libspore.so" -- <prefix>/share/spore/bindings/ffi
  for _, p in ipairs(cands) do
    if exists(p) then return ffi.load(p), p end
    tried[#tried + 1] = p
  end
  local ok, lib = pcall(ffi.load, "spore")
  if ok then return lib, "libspore (system path)" end
  error("spore: cannot find libspore.so (tried " .. table.concat(tried, ", ")
    .. " and the system path): run `make`, or set SPORE_LIB", 0)
end

-- libgomp also reads its settings once, when it loads (with libspore). Its idle workers spin
-- GOMP_SPINCOUNT times (300,000 by default, ~7 ms of `pause` here) after every parallel
-- region before they sleep, on the core the next OpenBLAS call or another process needs;
-- OMP_WAIT_POLICY=passive (stops 20-25) made them sleep at once, and every oneDNN primitive
-- then woke them through the kernel: a ResNet50 forward at batch 1 runs ~110 regions (each
-- convolution and its reorder), and in bf16 the wake-ups took a fifth of it. A short spin,
-- GOMP_SPINCOUNT=1000 (~25 us), keeps them awake between back-to-back primitives and
-- asleep through anything longer. Measured on a quiet 2-core Zen 5 (alternating, medians of 5
-- runs): bf16 forward at batch 1 19.2-20.1 -> 14.9-15.0 ms, float32 22.9-23.2 -> 21.9-23.2;
-- with a busy loop on one of the two cores, the batch-8 training step 952-967 against
-- 960-1,019 ms and the batch-1 forward 41-50 against 41-43 ms (3000 lost 8 % there). Unless the
-- user chose a policy or a spin count.
local function omp_short_spin()
  if os.getenv("OMP_WAIT_POLICY") ~= nil or os.getenv("GOMP_SPINCOUNT") ~= nil then return end
  pcall(ffi.cdef, "int setenv(const char *name, const char *value, int overwrite);")
  pcall(function() ffi.C.setenv("GOMP_SPINCOUNT", "1000", 0) end)
end

-- OpenBLAS's pthread workers, once started (when it loads, with libspore) and after every
-- threaded call, spin on sched_yield for 2^OPENBLAS_THREAD_TIMEOUT TSC cycles before they
-- sleep: 2^28 by default, 0.13 s at 2.1 GHz. On a 2-core machine that spinner takes half
-- the core that libgomp's workers need: a 205 MB checkpoint loaded at once in a fresh
-- process took 78-114 ms against 39-69 ms with 2^22 (~2 ms), and in a C process whose
-- OpenBLAS had just loaded, 170 against 76 ms. Threaded BLAS calls follow one another much
-- closer than 2 ms inside a step, so the workers still do not sleep between them. Unless
-- the user set the variable: 22. spore.config().blas_thread_timeout reports it.
local function blas_short_spin()
  if os.getenv("OPENBLAS_THREAD_TIMEOUT") ~= nil then return end
  pcall(ffi.cdef, "int setenv(const char *name, const char *value, int overwrite);")
  pcall(function() ffi.C.setenv("OPENBLAS_THREAD_TIMEOUT", "22", 0) end)
end

name_blas_core()
omp_short_spin()
blas_short_spin()
M.C, M.path = load_lib()
local C = M.C

--- Raise a Lua error with the engine's message when status ~= 0.
-- @param status sp_status from a C call
-- @param context optional prefix ("load_checkpoint: ...")
function M.check(status, context)
  if status ~= 0 then
    local msg = ffi.string(C.sp_last_error())
    if context then msg = context .. ": " .. msg end
    error(msg, 3)
  end
end

--- Like check, but returns nil, message instead of raising.
function M.try(status)
  if status ~= 0 then return nil, ffi.string(C.sp_last_error()) end
  return true
end

return M
