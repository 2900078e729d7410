-- gen_cdef.lua HEADER OUT — write the FFI cdefs (a Lua module returning a string)
-- from the text of HEADER between the @ffi-begin and @ffi-end markers
-- (engine/include/spore.h → bindings/ffi/cdef.lua, engine/dist/spore_dist.h →
-- bindings/ffi/dist_cdef.lua). Also usable as a library: dofile() returns
-- generate(header_text, header_path).
local function generate(text, header)
  header = header or "engine/include/spore.h"
  local body = text:match("/%*%s*@ffi%-begin.-%*/(.-)/%*%s*@ffi%-end%s*%*/")
  assert(body, header .. " has no @ffi-begin/@ffi-end section")
  body = body:gsub("/%*.-%*/", ""):gsub("//[^\n]*", "")
  local lines = {}
  for line in body:gmatch("[^\n]*") do
    line = line:gsub("%s+$", "")
    assert(not line:match("^%s*#"), "preprocessor line inside the FFI section: " .. line)
    if line:match("%S") then lines[#lines + 1] = line end
  end
  return "-- GENERATED from " .. header .. " by scripts/gen_cdef.lua. Do not edit.\nreturn [==[\n"
    .. table.concat(lines, "\n") .. "\n]==]\n"
end

local in_path, out_path = ...
if in_path and out_path then
  local f = assert(io.open(in_path, "rb"))
  local out = generate(f:read("*a"), in_path)
  f:close()
  local tmp = out_path .. ".tmp"
  local o = assert(io.open(tmp, "wb"))
  o:write(out)
  o:close()
  assert(os.rename(tmp, out_path))
end
return generate
