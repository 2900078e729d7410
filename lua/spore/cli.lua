--- spore.cli — one command-line convention for every script, on lua-argparse (Debian
-- `lua-argparse`).
--
-- A script describes itself with a spec:
--   { name = "eval.lua", summary = "...", epilog = "...",
--     args = { { "file", "FILE help" } },                 -- positionals (all required;
--                                                         --  many = true: one or more, a list)
--     options = { "net", "ckpt", "quiet",                 -- shared flags, from cli.COMMON
--                 { "--epochs", "int", 1, "epochs" },      -- flag, type, default, help
--                 { "--split", "string", "test", "train | test", choices = { "train", "test" } } } }
-- Types: string, int, number, flag, list (comma separated); `arg = "FILE"` names the value
-- in the help (default: N for int, X for number, VALUE for string).
-- A common flag can take a script-specific default or help: { "batch", default = 256 },
-- { "lr", nodefault = true, help = "..." }.
--
-- The convention (what cli.main guarantees):
--   * `--opt=value` and `--opt value` both work; `-h`/`--help` prints the help on stdout and
--     exits 0 before anything else runs (no side effects);
--   * a usage error (unknown option, missing or malformed value) prints
--     `NAME: error: MESSAGE`, the nearest option when the option is unknown, and the usage
--     line on stderr, then exits 2;
--   * an error raised by the script prints one line `NAME: MESSAGE` on stderr (SPORE_DEBUG=1
--     adds the traceback) and exits 1;
--   * on success the value the script's function returns (a table) is written as the last
--     line of stdout, one JSON object (spore.json); a failure writes nothing more to stdout,
--     so a consumer tells success by the exit status and reads the last line.
local argparse = require("argparse")
local json = require("spore.json")
local opts_lib = require("spore.opts")

local M = {}

--- The flags shared by the scripts: one meaning each, wherever a script takes it.
-- name → { flag, type, default, help }
M.COMMON = {
  net = { "--net", "string", "lenet5", "network: lenet5", arg = "NAME" },
  ckpt = { "--ckpt", "string", nil, "checkpoint file (.ckpt, .safetensors or .pth)", arg = "FILE" },
  dataset = { "--dataset", "string", "fashion-mnist", "mnist | fashion-mnist", choices = { "mnist", "fashion-mnist" },
    arg = "NAME" },
  data = { "--data", "string", nil, "dataset directory (fashion-mnist defaults to /usr/share/datasets/fashion-mnist)",
    arg = "DIR" },
  batch = { "--batch", "int", 32, "batch size" },
  epochs = { "--epochs", "int", 1, "epochs to train" },
  steps = { "--steps", "int", nil, "stop after N steps" },
  lr = { "--lr", "number", 0.01, "learning rate" },
  momentum = { "--momentum", "number", 0.9, "momentum" },
  seed = { "--seed", "int", 1, "seed for initialisation and shuffling" },
  out = { "--out", "string", nil, "run directory: checkpoints, metrics.jsonl, plots", arg = "DIR" },
  rename = { "--rename", "string", nil, "renaming rules: a Lua file returning {{pattern, replacement}, fn, ...},"
    .. " or a built-in set: torch_to_mindspore | mindspore_to_torch", arg = "RULES" },
  dec_key = { "--dec-key", "string", nil, "key to decrypt an encrypted .ckpt", arg = "KEY" },
  dec_mode = { "--dec-mode", "string", nil, "decryption mode: AES-GCM (default) | AES-CBC | SM4-CBC", arg = "MODE" },
  crc = { "--crc", "flag", false, "verify the CRC of what is read (crc_num trailer / metadata) and fail on a mismatch" },
  quiet = { "--quiet", "flag", false, "only warnings, errors and the final JSON line: no progress, per-step lines or report" },
  log_every = { "--log-every", "int", 20, "write a step record to metrics.jsonl every N steps" },
  no_plot = { "--no-plot", "flag", false, "do not draw the loss/accuracy plot (gnuplot) at the end" },
  device = { "--device", "string", nil, "run on this device: cpu | sim | cuda | cuda:N (default: the environment"
    .. " variable SPORE_DEVICE, else cpu); the network, its optimizer state and the batches live there", arg = "DEV" },
  allow_nonfinite = { "--allow-nonfinite", "flag", false,
    "train on when the loss or a parameter becomes NaN/Inf (default: stop with an error)" },
}

local UsageError = setmetatable({}, { __tostring = function() return "UsageError" end })
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.msg end
local function uerr(msg) error(setmetatable({ msg = msg }, UsageError), 0) end
--- Raise a usage error from inside a script's function (exit 2 with usage).
M.usage_error = uerr

-- the spec's options, common ones resolved → list of { flag, type, default, help, choices }
local function resolve(spec)
  local list = {}
  for _, o in ipairs(spec.options or {}) do
    local name = type(o) == "string" and o or (type(o) == "table" and o[1] and not o[1]:match("^%-") and o[1])
    if name then
      local c = M.COMMON[name] or M.COMMON[name:gsub("%-", "_")]
      if not c then error("spore.cli: no common flag '" .. name .. "'", 2) end
      local r = { c[1], c[2], c[3], c[4], choices = c.choices, arg = c.arg }
      if type(o) == "table" then
        if o.default ~= nil then r[3] = o.default end
        if o.nodefault then r[3] = nil end
        if o.help then r[4] = o.help end
        if o.choices then r.choices = o.choices end
      end
      list[#list + 1] = r
    else
      list[#list + 1] = o
    end
  end
  return list
end

local function key_of(flag) return (flag:gsub("^%-%-", ""):gsub("%-", "_")) end

local function converter(flag, ty, choices)
  if ty == "int" then
    return function(s)
      local n = tonumber(s)
      if not n or n ~= math.floor(n) then return nil, flag .. " expects an integer, got '" .. s .. "'" end
      return n
    end
  elseif ty == "number" then
    return function(s)
      local n = tonumber(s)
      if not n or n ~= n then return nil, flag .. " expects a number, got '" .. s .. "'" end
      return n
    end
  elseif ty == "list" then
    return function(s)
      local t = {}
      for part in s:gmatch("[^,]+") do t[#t + 1] = part end
      return t
    end
  elseif choices then
    return function(s)
      for _, c in ipairs(choices) do if c == s then return s end end
      return nil, flag .. " must be one of " .. table.concat(choices, ", ") .. ", got '" .. s .. "'"
    end
  end
  return nil
end

local function prog(spec) return "luajit scripts/" .. spec.name end

--- The argparse parser of a spec (help and usage come from it).
function M.parser(spec)
  local p = argparse(prog(spec), spec.summary, spec.epilog):add_help(false)
  p:help_max_width(100)
  for _, a in ipairs(spec.args or {}) do
    local arg = p:argument(a[1], a[2])
    if a.optional then arg:args("?") end
    if a.many then arg:args("+") end -- one or more: the value is a list
  end
  for _, o in ipairs(resolve(spec)) do
    local flag, ty, def, help = o[1], o[2], o[3], o[4]
    if ty == "flag" then
      p:flag(flag, help)
    else
      local h = help or ""
      if def ~= nil then h = h .. " (default: " .. tostring(def) .. ")" end
      local opt = p:option(flag, h):args(1)
      opt:argname(o.arg or ({ int = "N", number = "X", list = "A,B,..." })[ty] or "VALUE")
      local conv = converter(flag, ty, o.choices)
      if conv then opt:convert(conv) end
    end
  end
  p:flag("-h --help", "show this help and exit")
  return p
end

--- The full help text (what --help prints).
function M.help(spec)
  return (M.parser(spec):get_help():gsub("^Usage:", "usage:")) .. "\n"
end

--- The usage line(s).
function M.usage(spec)
  return (M.parser(spec):get_usage():gsub("^Usage:", "usage:")) .. "\n"
end

local function wants_help(argv)
  for _, a in ipairs(argv) do
    if a == "--" then return false end
    if a == "-h" or a == "--help" then return true end
  end
  return false
end

--- Parse argv (an array of strings) → options table (keys without dashes, '-' → '_'),
-- defaults applied; positionals under their names. `opts.help` is true for -h/--help.
-- A usage error is raised as a UsageError (its .msg).
function M.parse(spec, argv)
  if wants_help(argv) then return { help = true } end
  local list = resolve(spec)
  -- `--steps -3`: a negative number is the value of the option before it, not an option
  local takes, av = {}, {}
  for _, o in ipairs(list) do if o[2] ~= "flag" then takes[o[1]] = true end end
  local i = 1
  while i <= #argv do
    local a, nxt = argv[i], argv[i + 1]
    if takes[a] and nxt and nxt:sub(1, 1) == "-" and tonumber(nxt) then
      av[#av + 1] = a .. "=" .. nxt; i = i + 2
    else
      av[#av + 1] = a; i = i + 1
    end
  end
  local ok, res = M.parser(spec):pparse(av)
  if not ok then
    local msg = tostring(res)
    local bad = msg:match("^unknown option '([^']*)'")
    if bad and not msg:find("Did you mean", 1, true) then
      local known = {}
      for _, o in ipairs(list) do known[#known + 1] = o[1] end
      known[#known + 1] = "--help"
      local near = opts_lib.nearest(bad:match("^[^=]*"), known)
      if near then msg = msg .. "\nDid you mean '" .. near .. "'?" end
    end
    uerr((msg:gsub("\nDid you mean", "\ndid you mean")))
  end
  local o = {}
  for _, opt in ipairs(list) do
    local k = key_of(opt[1])
    local v = res[k]
    if opt[2] == "flag" then v = v or opt[3] or false end
    if v == nil then v = opt[3] end
    o[k] = v
  end
  for _, a in ipairs(spec.args or {}) do o[a[1]] = res[a[1]] end
  return o
end

local function emit(t)
  io.stdout:write(json.encode(t), "\n")
  io.stdout:flush()
end

local function fail_usage(spec, msg)
  io.stderr:write(spec.name .. ": error: " .. msg .. "\n" .. M.usage(spec)
    .. "run with --help for every option\n")
  os.exit(2)
end

--- Callbacks for a script's training: { status line?, loss lines? } and log(line), both on
-- stderr (stdout holds only the final JSON line). The status line is drawn only when stderr
-- is a terminal; --quiet turns off both, and log becomes a no-op.
function M.training_output(o, loss_every)
  local PB = require("spore.train.callbacks.progress_bar")
  local train = require("spore.train")
  if o.quiet then return {}, function() end end
  local function log(line) PB.log(line, io.stderr) end
  local cbs = {}
  if PB.isatty(2) then cbs[#cbs + 1] = PB({ out = io.stderr }) end
  cbs[#cbs + 1] = train.LossMonitor(loss_every or 200, { print = log })
  return cbs, log
end

--- Run fn(opts) with the script's error discipline; writes fn's result as the final JSON
-- line and exits the process (0, 1 or 2).
function M.main(spec, fn, argv)
  argv = argv or arg or {}
  local ok, opts = pcall(M.parse, spec, argv)
  if not ok then
    if getmetatable(opts) == UsageError then fail_usage(spec, opts.msg) end
    error(opts, 0)
  end
  if opts.help then io.stdout:write(M.help(spec)); io.stdout:flush(); os.exit(0) end
  local res = { xpcall(function()
    -- --device: the default device of what the script builds (spore.device); an unknown
    -- device or one this engine or machine lacks fails here, in one line
    if opts.device ~= nil then require("spore").set_default_device(opts.device) end
    return fn(opts)
  end, function(e)
    if getmetatable(e) == UsageError then return e end
    if os.getenv("SPORE_DEBUG") then return debug.traceback(tostring(e), 2) end
    return e
  end) }
  if not res[1] then
    local pb = package.loaded["spore.train.callbacks.progress_bar"]
    if pb then pb.clear_status() end
    local e = res[2]
    if getmetatable(e) == UsageError then fail_usage(spec, e.msg) end
    local msg = tostring(e):gsub("^[^:\n]*%.lua:%d+: ", "")
    if not os.getenv("SPORE_DEBUG") then msg = msg:match("^[^\n]*") end
    -- the library's option names, as this command line spells them
    for _, o in ipairs(resolve(spec)) do
      local k = key_of(o[1])
      if k:find("_") then msg = msg:gsub("pass " .. k .. "([^%w_])", "pass " .. o[1] .. "%1"):gsub("pass " .. k .. "$", "pass " .. o[1]) end
    end
    io.stderr:write(spec.name .. ": " .. msg .. "\n")
    os.exit(1)
  end
  emit(res[2] or json.object())
  os.exit(0)
end

return M
