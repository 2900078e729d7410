--- spore.cli — argument parsing and error discipline for the scripts.
-- A spec: { name = "eval.lua", summary = "...", options = {
--   { "--net", "string", "lenet5", "network name" },   -- flag, type, default, help
--   { "--batch", "int", 32, "batch size" }, { "--load-optimizer", "flag", false, "..." } } }
-- Types: string, int, number, flag, list (comma separated).
-- cli.main(spec, fn): parses arg; --help prints usage (exit 0); a usage error prints
-- the message and usage on stderr (exit 2); an error raised by fn prints one line
-- `name: message` on stderr (exit 1; SPORE_DEBUG=1 adds the traceback).
local class = require("spore.class")

local M = {}

local function usage(spec)
  local lines = { "usage: luajit scripts/" .. spec.name .. " [options]", "", spec.summary or "", "", "options:" }
  for _, o in ipairs(spec.options) do
    local flag, ty, def, help = o[1], o[2], o[3], o[4]
    local left = flag .. (ty == "flag" and "" or (" " .. ty:upper()))
    local d = (def ~= nil and ty ~= "flag") and (" (default: " .. tostring(def) .. ")") or ""
    lines[#lines + 1] = string.format("  %-24s %s%s", left, help or "", d)
  end
  lines[#lines + 1] = string.format("  %-24s %s", "--help", "show this message")
  return table.concat(lines, "\n") .. "\n"
end
M.usage = usage

local UsageError = class("UsageError")
function UsageError:__init(msg) self.msg = msg end
function UsageError:__tostring() return self.msg end
local function uerr(msg) error(UsageError(msg), 0) end

local function convert(flag, ty, s)
  if ty == "string" then return s end
  if ty == "int" then
    local n = tonumber(s)
    if not n or n ~= math.floor(n) then uerr(flag .. " expects an integer, got '" .. s .. "'") end
    return n
  end
  if ty == "number" then
    local n = tonumber(s)
    if not n or n ~= n then uerr(flag .. " expects a number, got '" .. s .. "'") end
    return n
  end
  if ty == "list" then
    local t = {}
    for part in s:gmatch("[^,]+") do t[#t + 1] = part end
    return t
  end
  error("cli: unknown option type " .. ty)
end

--- Parse argv (an array of strings) → options table (keys without dashes, '-' → '_').
function M.parse(spec, argv)
  local byflag, opts = {}, {}
  for _, o in ipairs(spec.options) do
    byflag[o[1]] = o
    local key = o[1]:gsub("^%-%-", ""):gsub("%-", "_")
    if o[2] == "flag" then opts[key] = o[3] or false else opts[key] = o[3] end
  end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then opts.help = true; return opts end
    local flag, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    flag = flag or a
    local o = byflag[flag]
    if not o then
      if a:sub(1, 1) == "-" then uerr("unknown option '" .. a .. "'") end
      uerr("unexpected argument '" .. a .. "'")
    end
    local key = flag:gsub("^%-%-", ""):gsub("%-", "_")
    if o[2] == "flag" then
      if inline then uerr(flag .. " takes no value") end
      opts[key] = true
    else
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
        if v == nil then uerr(flag .. " needs a value") end
      end
      opts[key] = convert(flag, o[2], v)
    end
    i = i + 1
  end
  return opts
end

--- Run fn(opts) with the script's error discipline; exits the process.
function M.main(spec, fn, argv)
  argv = argv or arg or {}
  local ok, opts = pcall(M.parse, spec, argv)
  if not ok then
    if getmetatable(opts) == UsageError then
      io.stderr:write(spec.name .. ": error: " .. opts.msg .. "\n" .. usage(spec))
      os.exit(2)
    end
    error(opts, 0)
  end
  if opts.help then io.write(usage(spec)); os.exit(0) end
  local res = { xpcall(function() return fn(opts) end, function(e)
    if getmetatable(e) == UsageError then return e end
    if os.getenv("SPORE_DEBUG") then return debug.traceback(tostring(e), 2) end
    return e
  end) }
  if not res[1] then
    local e = res[2]
    if getmetatable(e) == UsageError then
      io.stderr:write(spec.name .. ": error: " .. e.msg .. "\n" .. usage(spec))
      os.exit(2)
    end
    local msg = tostring(e):gsub("^[^:\n]*%.lua:%d+: ", "")
    io.stderr:write(spec.name .. ": " .. msg .. "\n")
    os.exit(1)
  end
  io.stdout:flush()
  os.exit(0)
end

--- Raise a usage error from inside fn (exit 2 with usage).
M.usage_error = uerr

return M
