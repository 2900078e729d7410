--- spore.repl — an interactive read-eval-print loop with `spore` preloaded.
-- Expressions are printed (tables and tensors pretty-printed); statements run;
-- incomplete input continues on the next line; `:help`, `:quit`; Ctrl-D exits.
-- Uses GNU readline (history) when present, through bindings/ffi/readline.lua.

local M = {}

--- Pretty-print any Lua value (tables nested, keys sorted, cycles marked).
function M.pretty(v, indent, seen)
  indent, seen = indent or "", seen or {}
  if type(v) == "table" and getmetatable(v) and getmetatable(v).__tostring then return tostring(v) end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts, n = {}, #v
  for _, k in ipairs(keys) do
    local key
    if type(k) == "number" and k >= 1 and k <= n and k == math.floor(k) then key = ""
    elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then key = k .. " = "
    else key = "[" .. M.pretty(k, "", seen) .. "] = " end
    parts[#parts + 1] = indent .. "  " .. key .. M.pretty(v[k], indent .. "  ", seen)
    if #parts >= 200 then parts[#parts + 1] = indent .. "  ..."; break end
  end
  seen[v] = nil
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

local HELP = [[
spore REPL — Lua (LuaJIT) with `spore` loaded.
  spore.tensor{{1,2},{3,4}}     a tensor from nested tables (float32)
  spore.randn{2,3}  spore.zeros{4}  t:shape()  t:sum()  a:matmul(b)
  spore.load_checkpoint(path)    read a checkpoint into a name -> tensor dict
  =expr or expr                  print the value(s) of an expression
  :help   this text      :quit   leave (or Ctrl-D)
]]

local function pack(...) return { n = select("#", ...), ... } end

--- Evaluate one chunk of source in env. Returns "incomplete" | "ok", results | "error", msg.
function M.eval(src, env)
  src = src:gsub("^=", "")
  local fn, err = loadstring("return " .. src, "=stdin")
  if not fn then fn, err = loadstring(src, "=stdin") end
  if not fn then
    if err:match("<eof>") then return "incomplete" end
    return "error", err
  end
  setfenv(fn, env)
  local res = pack(xpcall(fn, function(e) return tostring(e) end))
  if not res[1] then return "error", res[2] end
  return "ok", res
end

--- Run the loop. opts.spore: the spore module; opts.input/output for tests.
function M.run(opts)
  opts = opts or {}
  local env = setmetatable({ spore = opts.spore or require("spore") }, { __index = _G })
  local read_line = require("ffi.readline").read -- after spore: it puts bindings/ on package.path
  io.write("spore " .. env.spore.version .. " REPL (LuaJIT). :help for help, Ctrl-D to exit.\n")
  local buf = ""
  while true do
    local line = read_line(buf == "" and "spore> " or "   ..> ")
    if line == nil then io.write("\n") break end
    if buf == "" and line:match("^%s*:help") then io.write(HELP)
    elseif buf == "" and line:match("^%s*:q") then break
    else
      buf = buf == "" and line or (buf .. "\n" .. line)
      local status, res = M.eval(buf, env)
      if status == "incomplete" then -- keep reading
      else
        buf = ""
        if status == "error" then
          io.write("error: " .. tostring(res) .. "\n")
        elseif res.n > 1 then
          local out = {}
          for i = 2, res.n do out[#out + 1] = M.pretty(res[i]) end
          io.write(table.concat(out, "\t") .. "\n")
        end
      end
    end
    io.flush()
  end
end

return M
