-- memory_accounting_spec.lua — every byte the engine holds is counted in sp_mem_stats:
-- a loaded .ckpt raises the live count by (about) its tensor bytes, held in the reader's
-- protobuf-c blocks that the tensors adopt; freeing the tensors moves the big blocks into
-- the reader's cache (still counted) and sp_ckpt_release_cache brings the count back. A
-- safetensors file is counted once while its mapping is alive. Also spore.config and the
-- environment variables that lua/spore maps onto the engine's explicit settings.
local H = require("spec.helper")
local spore = require("spore")
local ckpt = spore.ckpt

local MB = 1024 * 1024

local function live()
  collectgarbage("collect")
  collectgarbage("collect")
  return spore.mem_stats().live
end

-- ~50 MB: 12 big float32 tensors (each over the reader's 1 MiB "big block" threshold),
-- 40 small ones (below it: malloc'd blocks), a float16 and an int64 one.
local function make_items()
  local list, bytes = {}, 0
  local function add(name, t)
    list[#list + 1] = { name, t }
    bytes = bytes + t:nbytes()
  end
  for i = 1, 12 do add(("big.%02d.weight"):format(i), spore.rand({1024, 1024}) + i) end
  for i = 1, 40 do add(("small.%02d.bias"):format(i), spore.rand({3000}) * i) end
  add("half", spore.rand({512, 300}):to("float16"))
  add("step", spore.arange(0, 777):to("int64"))
  return list, bytes
end

describe("sp_mem_stats counts checkpoint bytes", function()
  local dir, cache_mb
  before_each(function()
    dir = H.tmpdir()
    local c = spore.config()
    cache_mb = c.ckpt_cache_auto and "auto" or c.ckpt_cache_mb
  end)
  after_each(function()
    spore.config{ ckpt_cache_mb = cache_mb }
    os.execute("rm -rf " .. dir)
    collectgarbage("collect")
    ckpt.release_cache() -- leave no cached blocks behind for the specs that measure RSS
  end)

  it("a ~50 MB .ckpt: load raises live bytes by >= 0.95x its tensor bytes; free + release_cache returns them", function()
    local list, bytes = make_items()
    local path = spore.save_checkpoint(ckpt.dict(list), dir .. "/m.ckpt")
    list = nil -- luacheck: ignore
    assert.is_true(bytes > 48 * MB and bytes < 56 * MB, "tensor bytes " .. bytes)
    live() -- collect first: tensors of earlier loads must not refill the cache after the release
    ckpt.release_cache()
    local live0 = live()

    local d = spore.load_checkpoint(path)
    local live1 = live()
    local grew = live1 - live0
    assert.is_true(grew >= 0.95 * bytes, ("live grew by %d bytes for %d tensor bytes"):format(grew, bytes))
    -- and not wildly more: block headers, page rounding, the small protobuf-c blocks
    assert.is_true(grew <= bytes + 4 * MB, ("live grew by %d bytes for %d tensor bytes"):format(grew, bytes))
    -- the data is the data written
    assert.equal(54, #ckpt.keys(d))

    d = nil -- luacheck: ignore
    local live2 = live()
    -- freed big blocks wait in the reader's cache, still counted ...
    assert.is_true(live2 - live0 >= 0.9 * 12 * 4 * MB, ("after free: %d bytes above the start"):format(live2 - live0))
    -- ... until the cache is released
    local freed = ckpt.release_cache()
    assert.is_true(freed >= 12 * 4 * MB, "release_cache freed " .. tostring(freed))
    local live3 = live()
    assert.is_true(math.abs(live3 - live0) < 2 * MB, ("after release: %d bytes from the start"):format(live3 - live0))
  end)

  it("with ckpt_cache_mb = 0 freeing the tensors alone returns the bytes", function()
    local list, bytes = make_items()
    local path = spore.save_checkpoint(ckpt.dict(list), dir .. "/m.ckpt")
    list = nil -- luacheck: ignore
    spore.config{ ckpt_cache_mb = 0 }
    local live0 = live()
    local d = spore.load_checkpoint(path)
    assert.is_true(live() - live0 >= 0.95 * bytes)
    d = nil -- luacheck: ignore
    assert.is_true(math.abs(live() - live0) < 2 * MB, "bytes left after free: " .. (live() - live0))
    assert.equal(0, ckpt.release_cache())
  end)

  it("lowering the cache cap returns cached blocks at once", function()
    local list = make_items()
    local path = spore.save_checkpoint(ckpt.dict(list), dir .. "/m.ckpt")
    list = nil -- luacheck: ignore
    live() -- collect first: tensors of earlier loads must not refill the cache after the release
    ckpt.release_cache()
    local live0 = live()
    local d = spore.load_checkpoint(path)
    d = nil -- luacheck: ignore
    assert.is_true(live() - live0 > 40 * MB, "the cache holds the freed blocks")
    spore.config{ ckpt_cache_mb = 8 }
    local left = live() - live0
    assert.is_true(left <= 8 * MB + MB, "cache above its new cap: " .. left)
  end)

  it("a safetensors file is counted once while its mapping is alive", function()
    local list, bytes = make_items()
    local path = spore.save_checkpoint(ckpt.dict(list), dir .. "/m.safetensors")
    list = nil -- luacheck: ignore
    local size = #H.read_file(path)
    local live0 = live()
    local d = spore.load_checkpoint(path)
    local grew = live() - live0
    assert.is_true(grew >= size and grew < size + MB, ("grew %d for a %d-byte file"):format(grew, size))
    assert.is_true(grew >= bytes)
    -- a view keeps the whole mapping alive: counted until the last one dies
    local keep = d["big.01.weight"]
    d = nil -- luacheck: ignore
    assert.is_true(live() - live0 >= size)
    assert.is_true(keep ~= nil)
    keep = nil -- luacheck: ignore
    assert.is_true(math.abs(live() - live0) < MB)
  end)
end)

describe("spore.config", function()
  it("reads back what it sets and validates its keys", function()
    local c0 = spore.config()
    assert.same({ "boolean", "number", "boolean" }, { type(c0.nn_omp), type(c0.ckpt_cache_mb), type(c0.thp) })
    assert.is_true(c0.ckpt_cache_auto, "the cache cap is automatic by default")
    assert.is_true(c0.ckpt_cache_mb >= 256, "automatic cap " .. c0.ckpt_cache_mb .. " MiB")
    local c = spore.config{ nn_omp = not c0.nn_omp, ckpt_cache_mb = 3, thp = not c0.thp }
    assert.same({ nn_omp = not c0.nn_omp, ckpt_cache_mb = 3, ckpt_cache_auto = false, thp = not c0.thp, blas_core = c0.blas_core,
      blas_threading = c0.blas_threading, blas_thread_timeout = c0.blas_thread_timeout, bf16_kernel = c0.bf16_kernel, bf16_kernels = c0.bf16_kernels,
      conv_kernel = c0.conv_kernel, conv_kernels = c0.conv_kernels }, c)
    spore.config{ nn_omp = c0.nn_omp, ckpt_cache_mb = "auto", thp = c0.thp }
    assert.same(c0, spore.config())
    assert.has_error(function() spore.config{ nn_ompp = true } end,
      "spore.config: unknown setting 'nn_ompp' (expected nn_omp, ckpt_cache_mb, thp, bf16_kernel, conv_kernel)")
    assert.has_error(function() spore.config{ thp = 1 } end, "spore.config: thp must be a boolean, got number")
    assert.has_error(function() spore.config{ ckpt_cache_mb = -1 } end, "spore.config: ckpt_cache_mb must be >= 0, got -1")
    assert.has_error(function() spore.config{ ckpt_cache_mb = "Auto" } end,
      "spore.config: ckpt_cache_mb must be a number of MiB or \"auto\", got 'Auto'")
    assert.has_error(function() spore.config{ ckpt_cache_mb = true } end,
      "spore.config: ckpt_cache_mb must be a number of MiB or \"auto\", got boolean")
    assert.has_error(function() spore.config{ ckpt_cache_auto = false } end,
      "spore.config: unknown setting 'ckpt_cache_auto' (expected nn_omp, ckpt_cache_mb, thp, bf16_kernel, conv_kernel)")
    assert.has_error(function() spore.config("x") end, "spore.config: expected a table of settings, got string")
  end)

  it("maps SPORE_NN_OMP, SPORE_CKPT_CACHE_MB and SPORE_NO_THP at require time", function()
    local prog = [[luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path
      local c = require("spore").config(); print(c.nn_omp, c.ckpt_cache_auto and "auto" or c.ckpt_cache_mb, c.thp)' 2>&1]]
    local out, rc = H.run("env -u SPORE_NN_OMP -u SPORE_CKPT_CACHE_MB -u SPORE_NO_THP " .. prog)
    assert.equal(0, rc, out)
    -- nn_omp's default follows OpenBLAS's threading: on with its OpenMP build (one pool)
    local omp = spore.config().blas_threading == "openmp"
    assert.equal(tostring(omp) .. "\tauto\ttrue\n", out)
    out, rc = H.run("SPORE_NN_OMP=1 SPORE_CKPT_CACHE_MB=12 SPORE_NO_THP=1 " .. prog)
    assert.equal(0, rc, out)
    assert.equal("true\t12\tfalse\n", out)
    out = H.run("SPORE_NN_OMP=0 SPORE_CKPT_CACHE_MB=0 " .. prog)
    assert.equal("false\t0\ttrue\n", out)
    out = H.run("SPORE_CKPT_CACHE_MB=' auto ' " .. prog)
    assert.equal("auto", out:match("^%a+\t(%w+)\t"))
    -- not a number nor auto: refused by name (it used to mean 0, the cache off)
    out, rc = H.run("SPORE_CKPT_CACHE_MB=12x " .. prog)
    assert.is_not.equal(0, rc)
    assert.truthy(out:find("SPORE_CKPT_CACHE_MB: expected a whole number of MiB or auto, got '12x'", 1, true), out)
  end)

  it("the engine itself reads no environment variables", function()
    local out = H.run("grep -rn getenv engine/ || true")
    assert.equal("", out)
  end)
end)
