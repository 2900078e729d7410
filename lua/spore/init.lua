--- spore — load deep-learning checkpoints for inference and transfer learning.
--   local spore = require("spore")
-- Finds its own tree: works from any directory once lua/ is on package.path
-- (the scripts under scripts/ put it there themselves).
local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
-- Source tree: <root>/lua/spore → bindings at <root>/bindings.
-- Installed: <prefix>/share/lua/5.1/spore → bindings at <prefix>/share/spore/bindings.
local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end
local bindings
for _, cand in ipairs({ here .. "/../../bindings", here .. "/../../../spore/bindings" }) do
  if exists(cand .. "/ffi/lib.lua") then bindings = cand break end
end
if not bindings then error("spore: cannot find the bindings/ directory next to " .. here, 0) end
if not package.path:find(bindings .. "/?.lua", 1, true) then
  package.path = bindings .. "/?.lua;" .. package.path
end
-- make spore.* submodules resolvable even when only this file was found via a relative path
local luadir = here .. "/.."
if not package.path:find(luadir .. "/?.lua", 1, true) then
  package.path = luadir .. "/?.lua;" .. luadir .. "/?/init.lua;" .. package.path
end

local spore = {}
--- Collapse "a/b/../c" and "./" segments of a path.
local function normalize(path)
  local abs = path:sub(1, 1) == "/"
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
    elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  local r = table.concat(parts, "/")
  if abs then return "/" .. r end
  return r == "" and "." or r
end
spore._root = normalize(here .. "/../..")
spore.version = "0.1.0"

local T = require("spore.tensor")
spore.Tensor = T.Tensor
spore.tensor = T.tensor
spore.is_tensor = T.is_tensor
spore.zeros, spore.ones, spore.empty, spore.full = T.zeros, T.ones, T.empty, T.full
spore.arange, spore.rand, spore.randn = T.arange, T.rand, T.randn
spore.manual_seed = T.manual_seed
spore.from_pointer = T.from_pointer
spore.dtypes = T.dtypes
spore.print_options = T.print_options
--- spore.class(name, parent) → a class (lua/spore/class.lua: the one class idiom).
spore.class = require("spore.class")

local E = require("ffi.config")

-- Engine settings. The engine reads no environment variables: they are read here, once,
-- at require time (only the variables that are set change the engine's defaults).
--   SPORE_NN_OMP=0|1      OpenMP in the nn kernels (by default off with the default pthread
--                         OpenBLAS, whose threads and libgomp's workers competed for the
--                         cores; on with `make BLAS=openmp`, one libgomp pool for both; see
--                         README, Benchmarks)
--   SPORE_CKPT_CACHE_MB=N|auto  cap on the .ckpt reader's block cache, MiB (auto by default:
--                         the most the reader has had at once, 256 at least; 0 disables)
--   SPORE_NO_THP (any)    no transparent huge pages for .ckpt content blocks
--   SPORE_BF16_KERNEL=amx|avx512|portable  the bf16 GEMM's microkernel (amp_level "O2";
--                         the fastest this CPU runs by default; one it does not run is an error)
--   SPORE_CONV_KERNEL=auto|spore|onednn  which kernels run convolutions on the CPU (auto, the
--                         default with oneDNN: oneDNN for spore.nn chains' channels-last layers,
--                         spore's own for the rest; onednn without oneDNN is an error)
do
  local omp = os.getenv("SPORE_NN_OMP")
  if omp then E.set_nn_omp(omp:sub(1, 1) == "1") end
  local mb = os.getenv("SPORE_CKPT_CACHE_MB")
  if mb and mb ~= "" then
    local n = tonumber(mb:match("^%s*(%d+)%s*$"))
    if mb:match("^%s*auto%s*$") then E.set_ckpt_cache("auto")
    elseif n then E.set_ckpt_cache(n * 1048576)
    else error("SPORE_CKPT_CACHE_MB: expected a whole number of MiB or auto, got '" .. mb .. "'", 0) end
  end
  if os.getenv("SPORE_NO_THP") then E.set_ckpt_thp(false) end
  local bk = os.getenv("SPORE_BF16_KERNEL")
  if bk and bk ~= "" then
    local ok, err = pcall(E.set_bf16_kernel, bk)
    if not ok then error("SPORE_BF16_KERNEL: " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 0) end
  end
  local ck = os.getenv("SPORE_CONV_KERNEL")
  if ck and ck ~= "" then
    local ok, err = pcall(E.set_conv_kernel, ck)
    if not ok then error("SPORE_CONV_KERNEL: " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 0) end
  end
end

local CONFIG_KEYS = {
  nn_omp = "boolean", -- OpenMP regions in the nn kernels
  ckpt_cache_mb = "number", -- cap on the .ckpt reader's block cache, MiB (or "auto")
  thp = "boolean", -- transparent huge pages for .ckpt content blocks
  bf16_kernel = "string", -- the bf16 GEMM's microkernel: "amx", "avx512", "portable"
  conv_kernel = "string", -- convolutions on the CPU: "auto", "spore", "onednn"
}
--- Engine settings: spore.config{nn_omp = bool, ckpt_cache_mb = n|"auto", thp = bool,
-- bf16_kernel = "amx"|"avx512"|"portable", conv_kernel = "auto"|"spore"|"onednn"} sets the given
-- ones (unknown keys, wrong types, a bf16 kernel this CPU does not run and a conv kernel this
-- build lacks are errors); returns the current settings and,
-- read-only, ckpt_cache_auto (whether ckpt_cache_mb, the cap in force, follows the
-- reader's own peak: the default, and "auto" again), blas_core (the kernel set OpenBLAS chose at load: see bindings/ffi/lib.lua),
-- blas_threading ("openmp" or "pthread": the OpenBLAS build libspore was linked with),
-- blas_thread_timeout (N: OpenBLAS's idle pthread workers spin 2^N TSC cycles before they
-- sleep; nil without them; see bindings/ffi/lib.lua) and
-- bf16_kernels (the bf16 kernels this CPU runs, fastest first) and conv_kernels (likewise).
function spore.config(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("spore.config: expected a table of settings, got " .. type(opts), 2)
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    local want = CONFIG_KEYS[k]
    if not want then
      error("spore.config: unknown setting '" .. tostring(k) .. "' (expected nn_omp, ckpt_cache_mb, thp, bf16_kernel, conv_kernel)", 2)
    end
    if k == "ckpt_cache_mb" then
      if type(v) ~= "number" and v ~= "auto" then
        error("spore.config: ckpt_cache_mb must be a number of MiB or \"auto\", got " ..
          (type(v) == "string" and "'" .. v .. "'" or type(v)), 2)
      end
      if v ~= "auto" and (v < 0 or v ~= v or v == math.huge) then
        error("spore.config: ckpt_cache_mb must be >= 0, got " .. tostring(v), 2)
      end
    elseif type(v) ~= want then
      error(("spore.config: %s must be a %s, got %s"):format(k, want, type(v)), 2)
    end
  end
  if opts.nn_omp ~= nil then E.set_nn_omp(opts.nn_omp) end
  local mb = opts.ckpt_cache_mb
  if mb ~= nil then E.set_ckpt_cache(mb == "auto" and mb or math.floor(mb * 1048576)) end
  if opts.thp ~= nil then E.set_ckpt_thp(opts.thp) end
  if opts.bf16_kernel ~= nil then E.set_bf16_kernel(opts.bf16_kernel, 3) end
  if opts.conv_kernel ~= nil then E.set_conv_kernel(opts.conv_kernel, 3) end
  return { nn_omp = E.nn_omp(), ckpt_cache_mb = E.ckpt_cache() / 1048576,
    ckpt_cache_auto = E.ckpt_cache_auto(), thp = E.ckpt_thp(),
    blas_core = E.blas_core(), blas_threading = E.blas_threading(),
    blas_thread_timeout = E.blas_thread_timeout(), bf16_kernel = E.bf16_kernel(),
    bf16_kernels = E.bf16_kernels(), conv_kernel = E.conv_kernel(), conv_kernels = E.conv_kernels() }
end

--- Engine memory: { live = bytes, peak = bytes, allocs = n, soft_limit = bytes }.
function spore.mem_stats()
  local live, peak, n = E.mem_stats()
  return { live = live, peak = peak, allocs = n,
    soft_limit = T.gc_policy.soft, collections = T.gc_policy.collections }
end
function spore.matmul(a, b) return a:matmul(b) end
--- Monotonic wall clock in seconds.
function spore.clock() return require("ffi.data").now() end
function spore.cuda_device_count() return E.cuda_device_count() end
--- The number of CUDA GPUs this engine can use: 0 without a GPU or in a build without CUDA
-- (`make CUDA=1`). spore.device_count() > 0 means t:to("cuda") and net:to("cuda") work.
function spore.device_count() return E.cuda_device_count() end

-- Submodules load on first use: spore.nn, spore.models, spore.optim, spore.data, ...
local lazy = { nn = "spore.nn", models = "spore.models", optim = "spore.optim", data = "spore.data",
  ckpt = "spore.ckpt", train = "spore.train", repl = "spore.repl", zoo = "spore.zoo", dist = "spore.dist" }
setmetatable(spore, {
  __index = function(t, k)
    local mod = lazy[k]
    if mod then
      local ok, m = pcall(require, mod)
      if not ok then error(m, 2) end
      rawset(t, k, m)
      return m
    end
    -- top-level re-exports provided by submodules (load_checkpoint, Model, ...)
    local exports = rawget(t, "_exports")
    if exports and exports[k] then
      local m = require(exports[k])
      local v = m[k]
      rawset(t, k, v)
      return v
    end
    return nil
  end,
})
spore._exports = {
  load_checkpoint = "spore.ckpt", load_param_into_net = "spore.ckpt", save_checkpoint = "spore.ckpt",
  Model = "spore.train", FixedLossScaleManager = "spore.train", DynamicLossScaleManager = "spore.train",
  inference_mode = "spore.nn.chain", -- forwards that keep nothing for a backward (O2: bf16 activations)
}

require("spore.device").install(spore)
return spore
