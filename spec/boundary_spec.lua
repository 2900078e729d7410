-- boundary_spec.lua — the C/Lua boundary holds (docs/ARCHITECTURE.md): no Lua file under
-- lua/ reads tensor memory (:ptr()) or calls the C library (ffi.C, lib.C), outside
-- bindings/ nothing in the shipped Lua uses the FFI at all, libspore.so exports only sp_*
-- names, and the engine reads no environment variable.
local H = spec_helper

local function lua_files(dir)
  local out = H.run("find " .. dir .. " -name '*.lua' | sort")
  local r = {}
  for f in out:gmatch("[^\n]+") do r[#r + 1] = f end
  return r
end

describe("the C/Lua boundary", function()
  it("lua/ has no :ptr(), no ffi.C / lib.C and no require('ffi')", function()
    local files = lua_files("lua")
    assert.is_true(#files > 30, "found " .. #files .. " Lua files")
    for _, f in ipairs(files) do
      local src = H.read_file(f)
      assert.is_nil(src:find(":ptr()", 1, true), f .. " reads tensor memory through :ptr()")
      assert.is_nil(src:find("ffi%.C[^%w_]"), f .. " calls ffi.C")
      assert.is_nil(src:find("lib%.C%."), f .. " calls the library directly")
      assert.is_nil(src:find('require%(?%s*["\']ffi["\']'), f .. " requires the FFI")
    end
  end)

  it("libspore.so exports only sp_* names", function()
    local so = os.getenv("SPORE_LIB") or (H.root .. "/build/libspore.so")
    local out, rc = H.run("nm -D --defined-only " .. so .. " | awk '{print $3}'")
    assert.equal(0, rc)
    local n = 0
    for name in out:gmatch("[^\n]+") do
      n = n + 1
      assert.is_truthy(name:match("^sp_") or name:match("^spore_"), "exported: " .. name)
    end
    assert.is_true(n > 100, "only " .. n .. " exported names")
  end)

  it("the engine reads no environment variable", function()
    local out = H.run("grep -rln 'getenv' " .. H.root .. "/engine || true")
    assert.equal("", out)
  end)
end)
