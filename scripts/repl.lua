-- luajit scripts/repl.lua [--history FILE | --no-history] — the spore REPL (lua/spore/repl.lua).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local argparse = require("argparse")

local parser = argparse("repl.lua", "The spore REPL: LuaJIT with `spore` loaded. Tab completes names and fields, "
  .. "Ctrl-C interrupts a running chunk or clears the line, Ctrl-D (or :quit, os.exit) leaves. "
  .. "Expressions print their values: a net as its module tree, a checkpoint dict as a table. "
  .. "Commands: :help [NAME], :time EXPR, :quit. Input from a pipe is read line by line.")
  :usage_margin(2)
parser:option("--history", "History file (default: $SPORE_HISTORY, else ~/.spore_history; "
  .. "kept only when stdin is a terminal unless given here).")
  :argname("FILE")
parser:flag("--no-history", "Keep no history file.")
parser:epilog("Environment: SPORE_HISTORY (history file), SPORE_NO_READLINE (no line editing).")
local ok, args = parser:pparse()
if not ok then
  io.stderr:write(parser:get_usage() .. "\n\nerror: " .. tostring(args) .. "\n")
  os.exit(2)
end
if args.no_history and args.history then
  io.stderr:write(parser:get_usage() .. "\n\nerror: --history and --no-history exclude each other\n")
  os.exit(2)
end

local history = args.history
if args.no_history then history = false end
require("spore.repl").run({ spore = require("spore"), history = history })
