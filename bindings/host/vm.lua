--- bindings/host/vm.lua — the Lua half of a C host's VM (bindings/host/spore_host.c).
-- Loads and reloads the host's script in its own environment, keeps the tables a script
-- marks as kept, wraps the host's lent buffers as Tensors, and gives C the handles of the
-- tensors a script returns. Scripts see it as `spore.host`.
-- @module spore.host
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local ffi = lib.ffi
local spore = require("spore")

local M = {}

---------------------------------------------------------------- spore.host (script side)
local host = { version = 1 }
local kept = {}

--- The value kept under `name`: made by `make()` the first time, then the same value on
-- every later call, across reloads of the script (a loaded network, a replay buffer).
--   local net = spore.host.keep("net", function() return load_lenet() end)
-- @param name string
-- @param make function returning the value (not nil); needed only the first time
function host.keep(name, make)
  if type(name) ~= "string" then error("spore.host.keep: name must be a string, got " .. type(name), 2) end
  local v = kept[name]
  if v == nil then
    if type(make) ~= "function" then
      error("spore.host.keep: '" .. name .. "' is not kept yet and no function was given to make it", 2)
    end
    v = make()
    if v == nil then error("spore.host.keep: the function making '" .. name .. "' returned nil", 2) end
    kept[name] = v
  end
  return v
end

--- Forget a kept value (the next keep(name, make) makes it again).
function host.drop(name) kept[name] = nil end

--- The kept value, or nil.
function host.kept(name) return kept[name] end

rawset(spore, "host", host)

-- A script must not end the host's process.
os.exit = function()
  error("os.exit is not allowed in a script run by a C host (spore_host): return an error instead", 2)
end

---------------------------------------------------------------- loading
local jit_off = false   -- budgeted VMs: script code stays in the interpreter (hooks run there)
local script_path       -- the host's search path for the script's require()
local staging           -- environment of the version being loaded
local current           -- environment of the running version
local files, modules = {}, {} -- files read by the running version; modules it required

local function policy(f)
  if jit_off then jit.off(f, true) end
  return f
end

local function new_env()
  local env = setmetatable({}, { __index = _G })
  local function own(f) if f then policy(f); setfenv(f, env) end return f end
  -- chunks a script makes are named "=(script) NAME": the budget guard knows them as script code
  local function cname(name) return "=(script)" .. (name and (" " .. tostring(name):gsub("^[=@]", "")) or "") end
  env.loadstring = function(s, name) local f, e = loadstring(s, cname(name)); return own(f), e end
  env.load = function(s, name) local f, e = load(s, cname(name)); return own(f), e end
  env.loadfile = function(p) local f, e = loadfile(p); return own(f), e end
  env.dofile = function(p)
    local f, e = env.loadfile(p)
    if not f then error(e, 2) end
    return f()
  end
  return env
end

-- require() of a module in the script path: read, tracked for reload, run in the script's env
table.insert(package.loaders, 2, function(name)
  if not script_path then return nil end
  local p = package.searchpath(name, script_path)
  if not p then return "\n\tno file for '" .. name .. "' in the host's script path " .. script_path end
  local f, e = loadfile(p)
  if not f then error(e, 0) end
  policy(f)
  setfenv(f, staging or current or _G)
  files[#files + 1] = p
  modules[name] = true
  return f
end)

local function traceback(e)
  if type(e) ~= "string" then e = "(error object is a " .. type(e) .. " value)" end
  return debug.traceback(e, 2)
end

--- Load (or reload) the main script in a new environment. Returns the environment and the
-- files it read; on failure nil, the message and the files read, with the previous version
-- (its environment and modules) left in place.
function M.load(main, path, jitoff)
  jit_off, script_path = jitoff, path
  local saved, old_files, old_modules = {}, files, modules
  for name in pairs(modules) do saved[name] = package.loaded[name]; package.loaded[name] = nil end
  files, modules = { main }, {}
  local env = new_env()
  staging = env
  local f, err = loadfile(main)
  local ok = f ~= nil
  if f then
    policy(f)
    setfenv(f, env)
    ok, err = xpcall(f, traceback)
  end
  staging = nil
  if ok then
    current = env
    host.version = host.version + (old_files[1] and 1 or 0)
    return env, nil, files
  end
  for name in pairs(modules) do package.loaded[name] = nil end
  for name, v in pairs(saved) do package.loaded[name] = v end
  local tried = files
  files, modules = old_files, old_modules
  for _, p in ipairs(old_files) do tried[#tried + 1] = p end
  return nil, err, tried
end

--- An environment for a VM without a script (spore_vm_dostring only).
function M.bare(jitoff)
  jit_off = jitoff
  current = new_env()
  return current
end

--- Compile a chunk for the running version (spore_vm_dostring).
function M.compile(code)
  local f, err = loadstring(code, "=(host)")
  if not f then return nil, err end
  policy(f)
  setfenv(f, current or _G)
  return f
end

M.traceback = traceback

---------------------------------------------------------------- tensors across the boundary
local ptr_t = ffi.typeof("sp_tensor*")
local Tensor = T.Tensor

--- A Tensor over a lent host handle (the Lua side holds its own alias).
function M.lend(p) return Tensor.__wrap_alias(ffi.cast(ptr_t, p)) end

--- The handle of a returned tensor as a number (C aliases it at once), or nil.
function M.handle(v)
  if getmetatable(v) ~= Tensor then return nil end
  return Tensor.__host_handle(v)
end

return M
