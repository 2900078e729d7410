-- blas_core_spec.lua — bindings/ffi/lib.lua names OpenBLAS's AVX-512 kernels on AVX-512
-- CPUs (OpenBLAS 0.3.21 falls back to SSE3 "Prescott" on Xeons it does not know), and a
-- user's OPENBLAS_CORETYPE wins.
local spore = require("spore")

local function cpu_flags()
  local f = io.open("/proc/cpuinfo", "r")
  if not f then return nil end
  local have
  for line in f:lines() do
    local fl = line:match("^flags%s*:%s*(.*)$")
    if fl then have = {}; for w in fl:gmatch("%S+") do have[w] = true end; break end
  end
  f:close()
  return have
end

describe("OpenBLAS kernel set", function()
  it("is reported by spore.config().blas_core", function()
    local c = spore.config().blas_core
    assert.is_string(c)
    assert.is_true(#c > 0)
  end)
  -- in a child process (this one's environment already holds what lib.lua set): what
  -- `expr` gives there, c being that process's spore.config()
  local function config_in_child(env, expr)
    local p = io.popen(env .. " luajit -e 'package.path=\"lua/?.lua;lua/?/init.lua;bindings/?.lua;\"..package.path; local c = require(\"spore\").config(); io.write(" .. expr .. ")' 2>&1")
    local out = p:read("*a")
    p:close()
    return out
  end
  local function core_in_child(env) return config_in_child(env, "c.blas_core") end
  it("is the AVX-512 one on an AVX-512 CPU when OPENBLAS_CORETYPE is unset", function()
    local have = cpu_flags()
    if not have or not (have.avx512f and have.avx512bw and have.avx512dq and have.avx512vl and have.avx512cd) then
      pending("no AVX-512 here")
      return
    end
    assert.equals(have.avx512_bf16 and "Cooperlake" or "SkylakeX", core_in_child("env -u OPENBLAS_CORETYPE"))
  end)
  it("follows OPENBLAS_CORETYPE when the user sets it", function()
    local have = cpu_flags()
    local out = core_in_child("OPENBLAS_CORETYPE=Haswell")
    if have and have.avx2 and have.fma then assert.equals("Haswell", out) else assert.is_string(out) end
  end)
  it("shortens OpenBLAS's idle spin to 2^22 cycles unless OPENBLAS_THREAD_TIMEOUT is set", function()
    local function timeout_in_child(env) return config_in_child(env, "tostring(c.blas_thread_timeout)") end
    if spore.config().blas_threading ~= "pthread" then
      assert.equal("nil", timeout_in_child("env -u OPENBLAS_THREAD_TIMEOUT"))
      return
    end
    assert.equal("22", timeout_in_child("env -u OPENBLAS_THREAD_TIMEOUT"))
    assert.equal("26", timeout_in_child("OPENBLAS_THREAD_TIMEOUT=26"))
    assert.equal("4", timeout_in_child("OPENBLAS_THREAD_TIMEOUT=1"))
    -- set but empty: OpenBLAS reads 0, its own default
    assert.equal("28", timeout_in_child("OPENBLAS_THREAD_TIMEOUT="))
  end)
  it("libgomp's idle workers spin briefly (GOMP_SPINCOUNT=1000) unless the user chose a wait policy or spin count", function()
    local expr = "tostring(os.getenv(\"GOMP_SPINCOUNT\")), \" \", tostring(os.getenv(\"OMP_WAIT_POLICY\"))"
    assert.equal("1000 nil", config_in_child("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT", expr))
    assert.equal("nil passive", config_in_child("env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive", expr))
    assert.equal("300000 nil", config_in_child("env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=300000", expr))
  end)
  it("is the OpenBLAS build libspore was linked for (its RUNPATH), not the system's alternative", function()
    -- make deps installs both Debian builds; with one missing, the loader would fall back to
    -- whichever /usr/lib/<arch>/libopenblas.so.0 names, silently (the Makefile now refuses)
    local lib = require("ffi.lib")
    local p = io.popen("readelf -d '" .. lib.path .. "' 2>/dev/null")
    local dyn = p:read("*a")
    p:close()
    local runpath = dyn:match("RUNPATH%)%s+Library runpath: %[([^%]]*openblas%-[^%]:]*)")
    if not runpath then pending("no OpenBLAS RUNPATH in " .. lib.path .. " (a host process or an installed copy)") return end
    local loaded
    for line in io.lines("/proc/self/maps") do
      local path = line:match("%s(/%S*libopenblas[^/]*%.so[%.%d]*)$")
      if path then loaded = path; break end
    end
    assert.truthy(loaded, "no libopenblas in /proc/self/maps")
    local f = io.popen("readlink -f '" .. runpath .. "/libopenblas.so.0'")
    local want = f:read("*l")
    f:close()
    assert.equal(want, loaded)
    assert.equal(runpath:match("openblas%-(%a+)$"), spore.config().blas_threading)
  end)
  it("turns the nn kernels' OpenMP regions on by default only with OpenBLAS's OpenMP build", function()
    local c = spore.config()
    assert.is_true(c.blas_threading == "openmp" or c.blas_threading == "pthread", c.blas_threading)
    local out = config_in_child("env -u SPORE_NN_OMP", "c.blas_threading, \" \", tostring(c.nn_omp)")
    assert.equal(c.blas_threading .. " " .. tostring(c.blas_threading == "openmp"), out)
  end)
end)
