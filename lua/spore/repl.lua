--- spore.repl — an interactive read-eval-print loop with `spore` preloaded.
-- Expressions print their values (lua/spore/pretty.lua: a net as its module tree, a
-- checkpoint dict as a table); statements run; incomplete input continues on the next
-- line. Ctrl-C interrupts the running chunk (even a loop the JIT would compile) or clears
-- the line, and never ends the REPL; Ctrl-D or os.exit does. Errors print a traceback
-- without the REPL's own frames. Tab completes globals, fields, methods and spore names;
-- history persists in ~/.spore_history ($SPORE_HISTORY overrides). Commands: :help [NAME],
-- :time EXPR, :quit. Line editing through GNU readline (bindings/ffi/readline.lua) when
-- stdin is a terminal; piped input is read line by line.
--
-- How Ctrl-C reaches a running chunk: the engine's SIGINT handler only sets a flag
-- (bindings/ffi/interrupt.lua); while a chunk runs, a count hook polls it every
-- HOOK_COUNT VM instructions and raises the interrupt. Hooks never run inside JIT-compiled
-- traces, so every chunk typed here is compiled with the JIT off for it and the functions
-- it defines (jit.off(fn, true)); library code keeps the JIT, and answers Ctrl-C when it
-- next runs interpreted code or returns. An inner pcall cannot swallow the interrupt: once
-- raised, the hook raises it again at every instruction until the chunk has unwound to
-- the REPL.

local pretty = require("spore.pretty")

local M = {}

M.HOOK_COUNT = 1000

--- Pretty-print any Lua value (see spore.pretty.value).
M.pretty = pretty.value

local HELP = [[
spore REPL: Lua (LuaJIT) with `spore` loaded.
  spore.tensor{{1,2},{3,4}}     a tensor from nested tables (float32)
  spore.randn{2,3}  spore.zeros{4}  t:shape()  t:sum()  a:matmul(b)
  net = spore.models.lenet5()   a net prints as its tree of modules and parameters
  d = spore.load_checkpoint(path)  a name -> tensor dict, printed as a table
  expr  or  =expr               print the value(s) of an expression
  :help NAME                    the doc comment of a function (or module, class)
  :time EXPR                    run EXPR, print its value(s) and the wall time
  :help   this text      :quit   leave (or Ctrl-D)
  Tab completes names and fields (file names inside a string); Ctrl-C interrupts a
  running chunk or clears the line; history is kept in ~/.spore_history ($SPORE_HISTORY
  sets another file). Chunks typed here run without the JIT (so that Ctrl-C reaches
  them): put a hot loop in a file and require it to have it compiled.
]]
M.HELP = HELP

local function pack(...) return { n = select("#", ...), ... } end

local THIS_FILE = debug.getinfo(1, "S").short_src

---------------------------------------------------------------- evaluation
local INTERRUPT = setmetatable({}, { __tostring = function() return "interrupted (Ctrl-C)" end })
M.INTERRUPT = INTERRUPT

local intr -- bindings/ffi/interrupt.lua, once the REPL catches SIGINT (nil in tests)
local interrupting = false
local in_handler, current_handler = false, nil

-- Every HOOK_COUNT instructions: raise the interrupt when Ctrl-C was pressed. Once raised,
-- the hook runs at every instruction and raises again wherever the chunk goes on (after an
-- inner pcall caught it, say), except in the REPL's own message handler.
local function hook()
  if in_handler then return end
  if not interrupting then
    if not (intr and intr.take()) then return end
    interrupting = true
  end
  local f = debug.getinfo(2, "f")
  if f and f.func == current_handler then return end
  debug.sethook(hook, "", 1)
  error(INTERRUPT, 0)
end

--- Raise the interrupt in the running chunk as Ctrl-C would (for tests and hosts).
function M.interrupt() interrupting = true end

-- the frames of the current stack from `level` down to the REPL's xpcall, without the
-- REPL's own frames (the hook's, the handler's)
local function traceback(level)
  local tb = debug.traceback("", level)
  local out, started = {}, false
  for line in tb:gmatch("[^\n]+") do
    if started then
      if line:find("in function 'xpcall'", 1, true) then break end
      if not line:find(THIS_FILE, 1, true) then out[#out + 1] = M.tidy_path(line) end
    elseif line == "stack traceback:" then started = true end
  end
  return out
end

M.tidy_path = pretty.tidy_path

--- Compile a chunk of source: fn, is_expression | "incomplete" | nil, message. An
-- expression compiles as `return __pack(expr)`: call fn(pack) and its one result holds the
-- values (a call in the expression is then no tail call: its errors name stdin:1 and the
-- traceback keeps the typed line). A leading "=" is dropped (Lua 5.1 style).
function M.compile(src, env, name)
  src = src:gsub("^%s*=", "")
  name = name or "=stdin"
  local fn, err = loadstring("local __pack = ... return __pack(" .. src .. ")", name)
  -- a trailing comment needs the ")" on a line of its own (which can shift the line an
  -- error names, so only then)
  if not fn then fn = loadstring("local __pack = ... return __pack(" .. src .. "\n)", name) end
  local expr = fn ~= nil
  if not fn then fn, err = loadstring(src, name) end
  if not fn then
    if err:match("<eof>") then return "incomplete" end
    return nil, err
  end
  jit.off(fn, true) -- hooks fire in it and in every function it defines (Ctrl-C)
  if env then setfenv(fn, env) end
  return fn, expr
end

--- Run f(...) with Ctrl-C armed. Returns true, results (packed) | false, kind, message,
-- traceback lines, where kind is "error" or "interrupt".
function M.protect(f, ...)
  if intr then intr.take() end
  interrupting = false
  local tb
  local function handler(e)
    in_handler = true
    debug.sethook()
    if e == INTERRUPT or interrupting then
      tb = traceback(3)
      return INTERRUPT
    end
    tb = traceback(2)
    return e
  end
  in_handler, current_handler = false, handler
  debug.sethook(hook, "", M.HOOK_COUNT)
  local res = pack(xpcall(f, handler, ...))
  debug.sethook()
  in_handler, current_handler = false, nil
  local was = interrupting
  interrupting = false
  if res[1] then return true, res end
  if res[2] == INTERRUPT or was then return false, "interrupt", "interrupted (Ctrl-C)", tb or {} end
  local e = res[2]
  return false, "error", type(e) == "string" and e or pretty.value(e), tb or {}
end

--- Run a compiled chunk with Ctrl-C armed: true, results (packed; results[1] is true) |
-- false, kind, message, traceback lines.
function M.call(fn, expr)
  if not expr then return M.protect(fn) end
  local ok, a, b, c = M.protect(fn, pack)
  if not ok then return ok, a, b, c end
  local r, res = a[2], { true }
  for i = 1, r.n do res[i + 1] = r[i] end
  res.n = r.n + 1
  return true, res
end

--- Evaluate one chunk of source in env: "incomplete" | "ok", results (packed, results[1]
-- is true) | "error", message, traceback lines | "interrupt", message, traceback lines.
function M.eval(src, env)
  local fn, err = M.compile(src, env)
  if fn == "incomplete" then return "incomplete" end
  if not fn then return "error", err, {} end
  local ok, a, b, c = M.call(fn, err)
  if ok then return "ok", a end
  return a, b, c
end

---------------------------------------------------------------- completion
local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }
local COMMANDS = { ":help", ":quit", ":time" }

--- Is the end of `line` (or position upto, exclusive) inside a string literal?
function M.in_string(line, upto)
  upto = upto or #line + 1
  local q, i = nil, 1
  while i < upto do
    local c = line:sub(i, i)
    if q then
      if c == "\\" then i = i + 1 elseif c == q then q = nil end
    elseif c == '"' or c == "'" then q = c
    elseif line:sub(i, i + 1) == "--" then return false end
    i = i + 1
  end
  return q ~= nil
end

local function add_keys(t, into, seen)
  if type(t) ~= "table" or seen[t] then return end
  seen[t] = true
  for k in next, t do if type(k) == "string" then into[k] = true end end
  -- a Module keeps its children and parameters out of its own fields (nn/module.lua)
  for _, reg in ipairs({ "_mod_by", "_par_by" }) do
    local r = rawget(t, reg)
    if type(r) == "table" then for k in pairs(r) do if type(k) == "string" then into[k] = true end end end
  end
  local mt = getmetatable(t)
  if type(mt) ~= "table" then return end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then add_keys(idx, into, seen)
  elseif type(idx) == "function" then
    -- an __index function often serves the metatable's own methods (spore's Tensor)
    add_keys(mt, into, seen)
    -- spore's module table loads its submodules on first use: offer their names too
    for i = 1, 64 do
      local name, v = debug.getupvalue(idx, i)
      if not name then break end
      if name == "lazy" and type(v) == "table" then for k in pairs(v) do into[k] = true end end
    end
  end
  local exports = rawget(t, "_exports")
  if type(exports) == "table" then for k in pairs(exports) do into[k] = true end end
end

--- Completions of `word` (the text before the cursor back to the last operator or space,
-- e.g. "spore.load_ch", "net:for", "pri") in env: a sorted array of full words. The
-- prefix is looked up with ordinary indexing (so spore.nn loads when "spore.nn." is
-- completed); methods come through metatables and __index chains; names starting with
-- "_" only when the typed part does. Returns nil, true inside a string literal (a file
-- name is wanted there). `line` is the whole line up to the cursor (default: word).
function M.complete(word, env, line)
  line = line or word
  if M.in_string(line, #line - #word + 1) then return nil, true end
  if line:match("^%s*:[%a]*$") then
    local out = {}
    for _, c in ipairs(COMMANDS) do if c:sub(1, #word) == word then out[#out + 1] = c end end
    return out
  end
  local base, sep, part = word:match("^([%a_][%w_%.]*)([%.:])([%w_]*)$")
  local names = {}
  if not base then
    part = word:match("^[%a_][%w_]*$") or (word == "" and "")
    if not part then return {} end
    add_keys(env, names, {})
    add_keys(_G, names, {})
    for _, k in ipairs(KEYWORDS) do names[k] = true end
    base, sep = "", ""
  else
    if base:sub(-1) == "." then return {} end
    local ok, t = pcall(function()
      local v = env
      for name in base:gmatch("[^%.]+") do
        v = v[name]
        if v == nil then return nil end
      end
      return v
    end)
    if not ok or t == nil then return {} end
    if type(t) == "string" then t = string end
    if type(t) ~= "table" then return {} end
    add_keys(t, names, {})
    if sep == ":" then
      for k in pairs(names) do
        local okv, v = pcall(function() return t[k] end)
        if not okv or type(v) ~= "function" then names[k] = nil end
      end
    end
    base = base .. sep
  end
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #part) == part and k:match("^[%a_][%w_]*$") and (part:sub(1, 1) == "_" or k:sub(1, 1) ~= "_") then
      out[#out + 1] = base .. k
    end
  end
  table.sort(out)
  return out
end

---------------------------------------------------------------- :help NAME
local function read_lines(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  return lines
end

local function strip(l) return (l:gsub("^%s*%-%-%-?%s?", "")) end

-- the doc comment right above line n: the contiguous "--" lines, from the last one that
-- opens a doc comment ("--- text"); nil when there is none
local function doc_above(lines, n)
  local i = n - 1
  while i >= 1 and lines[i]:match("^%s*%-%-") do i = i - 1 end
  local first
  for j = i + 1, n - 1 do
    if lines[j]:match("^%s*%-%-%-%s") or lines[j]:match("^%s*%-%-%-$") then first = j end
  end
  if not first then return nil end
  local out = {}
  for j = first, n - 1 do out[#out + 1] = strip(lines[j]) end
  return out
end

-- the file's header doc comment (its first lines, when they open with "---")
local function doc_head(lines)
  if not lines[1] or not lines[1]:match("^%-%-%-") then return nil end
  local out = {}
  for _, l in ipairs(lines) do
    if not l:match("^%-%-") then break end
    out[#out + 1] = strip(l)
  end
  return out
end

local function fn_source(fn)
  local info = debug.getinfo(fn, "S")
  if info.what == "C" or info.source:sub(1, 1) ~= "@" then return nil, info end
  return info.source:sub(2), info
end

local function module_path(t)
  for name, v in pairs(package.loaded) do
    if rawequal(v, t) and type(name) == "string" then
      local p = package.searchpath and package.searchpath(name, package.path)
      if p then return p, name end
    end
  end
  return nil
end

--- The doc of a value as lines: a Lua function's doc comment (the "---" comment right
-- above its definition, found through debug.getinfo), a module's or class's header
-- comment and its functions. `name` is what the user typed.
function M.doc(v, name)
  name = name or "?"
  if type(v) == "function" then
    local path, info = fn_source(v)
    if not path then return { name .. ": a C function (no doc comment)" } end
    local where = M.tidy_path(path) .. ":" .. info.linedefined
    local lines = read_lines(path)
    if not lines or not lines[info.linedefined] then return { name .. ": defined at " .. where .. " (source not readable)" } end
    local out = { (lines[info.linedefined]:gsub("^%s+", "")) .. "    -- " .. where }
    local d = doc_above(lines, info.linedefined)
    if not d then out[#out + 1] = "(no doc comment)" else for _, l in ipairs(d) do out[#out + 1] = l end end
    return out
  end
  if type(v) == "table" and not pretty.is_tensor(v) then
    local path, modname = module_path(v)
    local cls = v
    if not path then
      local init = rawget(v, "__init") or rawget(v, "new")
      if type(init) ~= "function" then
        local mt = getmetatable(v)
        cls = mt and type(mt.__index) == "table" and mt.__index or nil
        init = cls and (rawget(cls, "__init") or rawget(cls, "new")) or nil
      end
      if type(init) == "function" then path = fn_source(init) end
    end
    local out = {}
    local lines = path and read_lines(path)
    local head = lines and doc_head(lines)
    if head then
      out[1] = name .. "    -- " .. (modname and ("module " .. modname .. ", ") or "") .. M.tidy_path(path)
      for _, l in ipairs(head) do out[#out + 1] = l end
    end
    local fns = {}
    for k, f in pairs(cls or v) do
      if type(k) == "string" and type(f) == "function" and k:sub(1, 1) ~= "_" then fns[#fns + 1] = k end
    end
    table.sort(fns)
    if #fns > 0 then out[#out + 1] = "functions: " .. table.concat(fns, ", ") end
    if #out == 0 then out[1] = name .. ": a table (no doc comment)" end
    return out
  end
  return { name .. " is a " .. (pretty.is_tensor(v) and "tensor" or type(v)) .. ": " .. pretty.value(v) }
end

---------------------------------------------------------------- history
--- The history file: $SPORE_HISTORY, else $HOME/.spore_history, else nil.
function M.history_path()
  local p = os.getenv("SPORE_HISTORY")
  if p and p ~= "" then return p end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.spore_history" end
  return nil
end

M.HISTORY_KEEP = 10000 -- lines the file keeps; longer files are cut to the newest half on load

--- Lines of the history file (oldest first; {} when it does not exist). A file longer
-- than HISTORY_KEEP lines is rewritten (through a temporary file) with its newest half.
function M.history_load(path)
  local lines = read_lines(path) or {}
  if #lines > M.HISTORY_KEEP then
    local keep = {}
    for i = #lines - math.floor(M.HISTORY_KEEP / 2) + 1, #lines do keep[#keep + 1] = lines[i] end
    lines = keep
    local tmp = path .. ".tmp" .. tostring(os.time())
    local f = io.open(tmp, "wb")
    if f and f:write(table.concat(lines, "\n") .. "\n") and f:close() then os.rename(tmp, path)
    else os.remove(tmp) end
  end
  return lines
end

--- Append one line to the history file; false, message when it cannot be written.
function M.history_append(path, line)
  local f, err = io.open(path, "ab")
  if not f then return false, err end
  local ok, werr = f:write(line, "\n")
  f:close()
  if not ok then return false, werr end
  return true
end

---------------------------------------------------------------- a session
local Session = {}
Session.__index = Session

--- A REPL session: new{env =, spore =, write = fn(s), history = path|false, clock = fn}.
-- session:feed(line) handles one input line and returns "more" (continuation wanted),
-- "ok" or "quit". Tests drive sessions directly.
function M.new(opts)
  opts = require("spore.opts").check("spore.repl.new", opts, { "env", "spore", "write", "history", "clock" }, nil,
    { env = "table", spore = "table", write = "function", history = { "string", "boolean" }, clock = "function" })
  local s = setmetatable({}, Session)
  s.spore = opts.spore or require("spore")
  s.env = opts.env or setmetatable({ spore = s.spore }, { __index = _G })
  s.write = opts.write or function(str) io.write(str) end
  s.history = opts.history or nil -- false: none
  s.clock = opts.clock or s.spore.clock
  s.buf = ""
  return s
end
M.Session = Session

-- "stack traceback:" and the frames, or "" when the only frame is the typed chunk itself
-- (the message already says where)
local function format_tb(frames)
  if frames[1] and (frames[1]:match("^%s*%[C%]: in function 'error'$") or frames[1]:match("^%s*%[C%]: in function 'assert'$")) then
    local f = {}
    for i = 2, #frames do f[#f + 1] = frames[i] end
    frames = f
  end
  if #frames == 0 or (#frames == 1 and frames[1]:match("^%s*stdin:%d+: in main chunk$")) then return "" end
  return "stack traceback:\n" .. table.concat(frames, "\n") .. "\n"
end

function Session:report(kind, msg, tb)
  -- on a terminal the ^C echo ends the output line
  if kind == "interrupt" then self.write((self.interactive and "\n" or "") .. "interrupted (Ctrl-C)\n" .. format_tb(tb))
  else self.write("error: " .. tostring(msg) .. "\n" .. format_tb(tb)) end
end

function Session:print_results(res)
  if res.n <= 1 then return end
  local ok, kind, msg, tb = M.protect(function()
    local out = {}
    for i = 2, res.n do out[#out + 1] = pretty.value(res[i]) end
    return table.concat(out, "\t")
  end)
  if ok then self.write(kind[2] .. "\n") else self:report(kind, "printing the value: " .. tostring(msg), tb) end
end

function Session:remember(line)
  if not self.history or not line:match("%S") or line == self.last_line then return end
  self.last_line = line
  local ok, err = M.history_append(self.history, line)
  if not ok then
    self.write("warning: history not kept: " .. tostring(err) .. "\n")
    self.history = nil
  end
end

function Session:cmd_help(name)
  if name == "" then self.write(HELP) return end
  name = name:gsub(":([%a_][%w_]*)$", ".%1") -- net:forward names the method net.forward
  local fn, expr = M.compile(name, self.env)
  if fn == "incomplete" or not fn or not expr then self.write("error: :help wants a name, got " .. name .. "\n") return end
  local ok, res, msg = M.call(fn, expr)
  if not ok then self.write("error: " .. tostring(msg) .. "\n") return end
  local v = res[2]
  if v == nil then self.write(name .. " is nil\n") return end
  self.write(table.concat(M.doc(v, name), "\n") .. "\n")
end

function Session:cmd_time(src)
  if not src:match("%S") then self.write("usage: :time EXPR\n") return end
  local fn, err = M.compile(src, self.env)
  if fn == "incomplete" then self.write("error: :time wants a complete chunk on one line\n") return end
  if not fn then self.write("error: " .. err .. "\n") return end
  local t0 = self.clock()
  local ok, a, b, c = M.call(fn, err)
  local dt = self.clock() - t0
  if ok then self:print_results(a) else self:report(a, b, c) end
  local s
  if dt < 1e-3 then s = string.format("%.1f us", dt * 1e6)
  elseif dt < 1 then s = string.format("%.2f ms", dt * 1e3)
  else s = string.format("%.3f s", dt) end
  self.write("wall time: " .. s .. "\n")
end

--- Handle one line of input: "more" | "ok" | "quit".
function Session:feed(line)
  self:remember(line)
  if self.buf == "" then
    local cmd, rest = line:match("^%s*:(%a*)%s*(.-)%s*$")
    if cmd then
      if cmd == "help" or cmd == "h" then self:cmd_help(rest)
      elseif cmd == "time" then self:cmd_time(rest)
      elseif cmd == "quit" or cmd == "q" or cmd == "exit" then return "quit"
      else self.write("unknown command :" .. cmd .. " (:help lists them)\n") end
      return "ok"
    end
  end
  self.buf = self.buf == "" and line or (self.buf .. "\n" .. line)
  local status, a, b = M.eval(self.buf, self.env)
  if status == "incomplete" then return "more" end
  self.buf = ""
  if status == "ok" then self:print_results(a) else self:report(status, a, b) end
  return "ok"
end

--- Forget a half-typed multi-line chunk (Ctrl-C at a continuation prompt).
function Session:cancel() self.buf = "" end

--- Run the loop on the terminal (or piped stdin). opts: spore, history (a path; false for
-- none; default M.history_path() when stdin is a terminal).
function M.run(opts)
  opts = require("spore.opts").check("spore.repl.run", opts, { "spore", "history" }, nil,
    { spore = "table", history = { "string", "boolean" } })
  local spore = opts.spore or require("spore")
  local RL = require("ffi.readline") -- after spore: it puts bindings/ on package.path
  intr = require("ffi.interrupt")
  local history = opts.history
  if history == nil and RL.available then history = M.history_path() end
  local s = M.new({ spore = spore, history = history or nil })
  s.interactive = RL.available
  if history then
    local lines = M.history_load(history)
    for i = math.max(1, #lines - 999), #lines do RL.add_history(lines[i]) end
    s.last_line = lines[#lines]
  end
  RL.set_completer(function(line, _, word) return M.complete(word, s.env, line) end, M.in_string)
  intr.catch(true)
  io.write("spore " .. spore.version .. " REPL (LuaJIT). :help for help, Ctrl-D to exit.\n")
  while true do
    local line = RL.read(s.buf == "" and "spore> " or "   ..> ")
    if line == nil then io.write("\n") break end
    if line == false then s:cancel()
    else
      if RL.available and line:match("%S") then RL.add_history(line) end
      if s:feed(line) == "quit" then break end
    end
    io.flush()
  end
  intr.catch(false)
end

return M
