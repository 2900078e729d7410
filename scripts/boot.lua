-- boot.lua — put this tree's lua/ on package.path. Scripts start with:
--   dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
-- so they work from any working directory with no environment variable set.
-- The root is found from this file's own path, so nested scripts work too.
local src = debug.getinfo(1, "S").source
local dir = src:match("^@(.-)[^/\\]*$") or ""
if dir == "" then dir = "./" end
local root = dir .. ".."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
return root
