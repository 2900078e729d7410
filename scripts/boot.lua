-- boot.lua — put spore's Lua modules on package.path. Scripts start with:
--   dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
-- so they work from any working directory with no environment variable set.
-- The modules are found from this file's own path: the source tree (<root>/scripts/boot.lua,
-- modules in <root>/lua) or the install layout (<prefix>/share/spore/scripts/boot.lua,
-- modules in <prefix>/share/lua/5.1).
local src = debug.getinfo(1, "S").source
local dir = src:match("^@(.-)[^/\\]*$") or ""
if dir == "" then dir = "./" end
local root = dir .. ".."
local luadir = root .. "/lua"
local f = io.open(luadir .. "/spore/init.lua", "rb")
if f then f:close() else luadir = dir .. "../../lua/5.1" end
package.path = luadir .. "/?.lua;" .. luadir .. "/?/init.lua;" .. package.path
return root
