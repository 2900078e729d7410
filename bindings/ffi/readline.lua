--- bindings/ffi/readline.lua — GNU readline (line editing, history) through the FFI,
-- for the REPL. `available` is false when the library is missing or SPORE_NO_READLINE
-- is set; then read() falls back to io.read. Lua code above the bindings never sees
-- a C pointer: read() returns a Lua string (or nil at end of input).
local ffi = require("ffi")

local M = { available = false }

local rl
do
  local ok = pcall(ffi.cdef, [[
    char *readline(const char *prompt);
    void add_history(const char *line);
    void free(void *p);
  ]])
  if ok and os.getenv("SPORE_NO_READLINE") == nil then
    local lok, lib = pcall(ffi.load, "readline")
    if not lok then lok, lib = pcall(ffi.load, "libreadline.so.8") end
    if lok then rl = lib end
  end
end
M.available = rl ~= nil

--- Read one line with the prompt shown; nil at end of input (Ctrl-D). Non-blank lines
-- go into the history.
function M.read(prompt)
  if rl then
    local p = rl.readline(prompt)
    if p == nil then return nil end
    local s = ffi.string(p)
    ffi.C.free(p) -- readline's buffer comes from malloc
    if s:match("%S") then rl.add_history(s) end
    return s
  end
  io.write(prompt)
  io.flush()
  return io.read("*l")
end

return M
