-- boot.lua — put this tree's lua/ on package.path. Scripts start with:
--   dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
-- so they work from any working directory with no environment variable set.
local dir = (arg and arg[0] or ""):match("^(.-)[^/\\]*$")
if dir == "" then dir = "./" end
local root = dir .. ".."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
return root
