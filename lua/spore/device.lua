--- spore.device — the default device of new networks, optimizer state and dataset
-- batches: "cpu" unless the environment variable SPORE_DEVICE names another ("sim",
-- "cuda", "cuda:1"). The environment is read here, in Lua, once; the engine never reads it.
--   spore.set_default_device("sim"); spore.get_default_device() --> "sim"
local T = require("spore.tensor")

local M = {}

local function check(name, level, what)
  what = what or "device"
  if type(name) ~= "string" or not T.is_device_name(name) then
    error(what .. ": expected a device name ('cpu', 'sim', 'cuda', 'cuda:N'), got " .. tostring(name), level + 1)
  end
  -- the engine's message when the device is unknown or not built in (without a Lua location)
  local ok, err = pcall(T.device_code, name)
  if not ok then error(what .. " '" .. name .. "': " .. tostring(err):gsub("^[^\n]-:%d+: ", ""), level + 1) end
  return name
end
M.check = check

local current
local function from_env()
  local env = os.getenv("SPORE_DEVICE")
  if env == nil or env == "" then return "cpu" end
  return check(env, 3, "environment variable SPORE_DEVICE")
end

--- The default device name.
function M.get() if current == nil then current = from_env() end return current end
--- Set the default device (returns the previous one).
function M.set(name)
  local prev = M.get()
  current = check(name, 2)
  return prev
end
M.get_default_device, M.set_default_device = M.get, M.set

--- Device name of x: a Tensor's device, a module's (net:device()), or a device name.
function M.of(x)
  if type(x) == "string" then return x end
  if T.is_tensor(x) then return x:device() end
  if type(x) == "table" and type(x.device) == "function" then return x:device() end
  return nil
end

--- Wire spore.set_default_device / spore.get_default_device / spore.device into the spore table.
function M.install(spore)
  spore.set_default_device, spore.get_default_device = M.set, M.get
  rawset(spore, "device", M)
  return M
end

return M
