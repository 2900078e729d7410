-- tooling_spec.lua — generated cdefs are fresh, the REPL answers, a C host embeds spore.
local H = spec_helper

describe("ffi cdefs", function()
  it("bindings/ffi/cdef.lua matches what engine/include/spore.h generates", function()
    local gen = dofile("scripts/gen_cdef.lua")
    local f = assert(io.open("engine/include/spore.h", "rb"))
    local want = gen(f:read("*a"))
    f:close()
    f = assert(io.open("bindings/ffi/cdef.lua", "rb"))
    local have = f:read("*a")
    f:close()
    assert.equal(want, have, "cdef.lua is stale: run make")
  end)
  it("bindings/ffi/dist_cdef.lua matches what engine/dist/spore_dist.h generates", function()
    local gen = dofile("scripts/gen_cdef.lua")
    local want = gen(H.read_file("engine/dist/spore_dist.h"), "engine/dist/spore_dist.h")
    assert.equal(want, H.read_file("bindings/ffi/dist_cdef.lua"), "dist_cdef.lua is stale: run make")
    assert.truthy(want:find("int sp_dist_nccl_iallreduce(const void *t, size_t n, int *handle);", 1, true))
  end)
end)

describe("REPL", function()
  it("answers 1+1, prints a tensor, continues multi-line input, reports errors", function()
    local out, rc = H.run("printf '1+1\\nspore.tensor{{1,2},{3,4}}\\nlocal s = 0 for i = 1, 3 do\\ns = s + i end print(\"s=\"..s)\\nnosuch.field\\n' | "
      .. "SPORE_NO_READLINE=1 luajit scripts/repl.lua 2>&1")
    assert.equal(0, rc)
    assert.matches("spore> 2\n", out, 1, true)
    assert.matches("tensor([[1., 2.],\n        [3., 4.]])", out, 1, true)
    assert.matches("s=6", out, 1, true)
    assert.matches("error: .*nosuch", out)
  end)
  it("works from another directory", function()
    local out, rc = H.run("cd /tmp && printf 'spore.ones{2}:sum()\\n' | SPORE_NO_READLINE=1 luajit " .. H.root .. "/scripts/repl.lua")
    assert.equal(0, rc)
    assert.matches("spore> 2\n", out, 1, true)
  end)
end)

describe("C host", function()
  it("embeds LuaJIT + spore and exchanges tensors with a script", function()
    local out, rc = H.run("SPORE_LIB= build/spore_host_example " .. H.root .. " 2>&1")
    assert.equal(0, rc, out)
    assert.matches("y = [[28, 64], [64, 154]]", out, 1, true)
  end)
end)

describe("require('spore') from the root", function()
  it("works with only lua/ on package.path (the README's one-liner)", function()
    local out, rc = H.run([[SPORE_LIB= luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' ]]
      .. [[-e 'print(require("spore").tensor{{1,2},{3,4}})' 2>&1]])
    assert.equal(0, rc, out)
    assert.equal("tensor([[1., 2.],\n        [3., 4.]])\n", out)
  end)
end)

describe("make install", function()
  it("installs library, header, Lua modules and spore.pc that work from elsewhere", function()
    local d = H.tmpdir()
    local out, rc = H.run("make -s install PREFIX=" .. d .. " >/dev/null 2>&1; cd / && SPORE_LIB= luajit -e 'package.path=\""
      .. d .. "/share/lua/5.1/?.lua;" .. d .. "/share/lua/5.1/?/init.lua;\"..package.path' "
      .. "-e 'local s = require(\"spore\"); print(s.ones{3}:sum(), require(\"ffi.lib\").path)' 2>&1")
    assert.equal(0, rc, out)
    assert.matches("^3\t" .. d:gsub("%p", "%%%0") .. "/.*libspore%.so", out)
    local pc = assert(io.open(d .. "/lib/pkgconfig/spore.pc")):read("*a")
    assert.matches("prefix=" .. d:gsub("%p", "%%%0"), pc)
    assert.matches("Libs: %-L%${libdir} %-Wl,%-rpath,%${libdir} %-lspore_host %-lspore", pc)
    H.run("rm -rf " .. d)
  end)
end)

describe("small things (issue 14)", function()
  local spore = require("spore")
  it("randn/rand/ones/empty take sizes as arguments, as zeros does (torch's form)", function()
    for _, f in ipairs({ "zeros", "ones", "rand", "randn", "empty" }) do
      local t = spore[f](2, 3)
      assert.same({ 2, 3 }, t:shape(), f)
      assert.equal("float64", spore[f](2, 3, "float64"):dtype(), f)
      assert.same({ 4 }, spore[f]({ 4 }):shape(), f)
    end
    spore.manual_seed(7)
    local a = spore.randn(2000)
    assert.is_true(math.abs(a:mean()) < 0.1)
    local b = spore.randn({ 2000 }, 5, 0.01) -- the table form keeps mean and std
    assert.is_true(math.abs(b:mean() - 5) < 0.01)
    local r = spore.rand(1000)
    assert.is_true(r:min() >= 0 and r:max() < 1)
  end)
  it("#t's meaning is t:size(1) (0 for a scalar), through __len", function()
    -- LuaJIT (Lua 5.1 semantics) does not call __len for tables, so `#t` itself stays 0 on
    -- Debian's luajit; the metamethod holds the documented meaning for a 5.2-compat build.
    local len = getmetatable(spore.zeros(1)).__len
    assert.equal(3, len(spore.zeros(3, 4)))
    assert.equal(0, len(spore.tensor(5)))
  end)
  it("mnist/fashion_mnist(dir, \"train\"|\"test\") take MindSpore's usage string", function()
    local d = H.fixtures_dir()
    if not d then return pending("fixture missing: mnist (set SPORE_FIXTURES)") end
    local tr = spore.data.mnist(d .. "/mnist", "train", { batch = 100 })
    assert.equal("train", tr.split)
    local te = spore.data.mnist(d .. "/mnist", "test")
    assert.equal("test", te.split)
    assert.matches("train%-images", tr.files[1]); assert.matches("t10k%-images", te.files[1])
    local fm = spore.data.fashion_mnist(d .. "/mnist", "test")  -- the same idx format
    assert.equal("test", fm.split)
    assert.has_error(function() spore.data.fashion_mnist(d .. "/mnist", 3) end,
      "fashion_mnist: second argument must be a split (\"train\"|\"test\") or an options table, got number")
    assert.has_error(function() spore.data.mnist(d .. "/mnist", "val") end)
  end)
end)

describe("ThreadSanitizer builds", function()
  it("every target_clones in the engine is off under TSan (its ifunc resolvers would run before the TSan runtime)", function()
    local out = H.run("grep -rl 'target_clones' engine")
    local n = 0
    for f in out:gmatch("[^\n]+") do
      n = n + 1
      local src = H.read_file(f)
      -- each definition of a clones macro sits in a block guarded by !defined(__SANITIZE_THREAD__)
      for pre in src:gmatch("#if([^\n]*)\n#define [%w_]+ __attribute__%(%(target_clones") do
        assert.truthy(pre:find("!defined(__SANITIZE_THREAD__)", 1, true), f .. ": target_clones without the TSan guard")
      end
      local _, uses = src:gsub("target_clones", "")
      local _, guarded = src:gsub("#define [%w_]+ __attribute__%(%(target_clones", "")
      assert.equal(uses, guarded, f .. ": target_clones used outside a guarded macro")
    end
    assert.is_true(n >= 2, "expected the conv kernels' clones (conv.c, conv_wino.c)")
  end)
end)
