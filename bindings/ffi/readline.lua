--- bindings/ffi/readline.lua — GNU readline through the FFI, for the REPL: line editing,
-- history, Tab completion, and Ctrl-C that clears the line instead of killing the process.
-- Lua code above the bindings never sees a C pointer: read() returns a Lua string, nil at
-- end of input (Ctrl-D), or false when Ctrl-C cancelled the line.
--
-- `available` is true when libreadline loads, stdin is a terminal and SPORE_NO_READLINE is
-- unset; otherwise read() prints the prompt and falls back to io.read (piped input).
--
-- Reading uses readline's callback interface: this module waits on stdin with poll(2) and
-- feeds readline one character at a time, so a SIGINT (which the engine's handler turns into
-- a flag, bindings/ffi/interrupt.lua) interrupts the poll with EINTR and read() cancels the
-- line itself. readline installs no signal handler of its own (rl_catch_signals = 0), except
-- SIGWINCH while a line is being read.
local ffi = require("ffi")
local I = require("ffi.interrupt")

local M = { available = false }

-- libc under private names (asm aliases), so no other module's declarations can clash
pcall(ffi.cdef, [[
  struct sp_rl_pollfd { int fd; short events; short revents; };
  int sp_rl_poll(struct sp_rl_pollfd *fds, unsigned long nfds, int timeout) __asm__("poll");
  void *sp_rl_malloc(size_t n) __asm__("malloc");
  void sp_rl_free(void *p) __asm__("free");
  int sp_rl_isatty(int fd) __asm__("isatty");
]])
local ok_rl_cdef = pcall(ffi.cdef, [[
  typedef void rl_vcpfunc_t(char *);
  typedef char **rl_completion_func_t(const char *, int, int);
  typedef char *rl_cpvfunc_t(void);
  void rl_callback_handler_install(const char *prompt, rl_vcpfunc_t *lhandler);
  void rl_callback_read_char(void);
  void rl_callback_handler_remove(void);
  void rl_callback_sigcleanup(void);
  int rl_check_signals(void);
  void add_history(const char *line);
  void rl_replace_line(const char *text, int clear_undo);
  void rl_redisplay(void);
  int rl_crlf(void);
  int rl_catch_signals;
  int rl_catch_sigwinch;
  int rl_persistent_signal_handlers;
  rl_completion_func_t *rl_attempted_completion_function;
  rl_cpvfunc_t *rl_completion_word_break_hook;
  int rl_attempted_completion_over;
  char *rl_completer_word_break_characters;
  int rl_completion_append_character;
  int rl_sort_completion_matches;
  char *rl_line_buffer;
  int rl_point;
  int rl_end;
  const char *rl_readline_name;
]])

local C = ffi.C
local EINTR = 4

--- isatty(fd) → bool.
function M.isatty(fd) return C.sp_rl_isatty(fd or 0) == 1 end

local rl
if ok_rl_cdef and os.getenv("SPORE_NO_READLINE") == nil and M.isatty(0) and M.isatty(1) then
  local lok, lib = pcall(ffi.load, "readline")
  if not lok then lok, lib = pcall(ffi.load, "libreadline.so.8") end
  if lok then rl = lib end
end
M.available = rl ~= nil

-- kept alive for as long as readline points at them
local keep = {}

if rl then
  keep.name = ffi.new("char[?]", 6, "spore")
  rl.rl_readline_name = keep.name
  rl.rl_catch_signals = 0 -- SIGINT stays with the engine's flag handler
  rl.rl_catch_sigwinch = 1
  rl.rl_persistent_signal_handlers = 1 -- SIGWINCH caught for the whole line, not per char
  -- Lua's operators and brackets end a word; '.' and ':' do not, so "spore.load_ch"
  -- and "net:for" reach the completer whole
  local breaks = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#"
  keep.breaks = ffi.new("char[?]", #breaks + 1, breaks)
  rl.rl_completer_word_break_characters = keep.breaks
end

---------------------------------------------------------------- history
--- Add one line to readline's in-memory history (up/down arrows, Ctrl-R).
function M.add_history(line)
  if rl then rl.add_history(line) end
end

---------------------------------------------------------------- completion
local completer -- function(line_before_cursor, word_start0, word) → candidates, file_names
local in_string -- function(line_before_cursor) → true when the cursor is inside a string literal

-- a malloc'd C string (readline frees what completion returns)
local function cstr(s)
  local p = ffi.cast("char *", C.sp_rl_malloc(#s + 1))
  ffi.copy(p, s, #s + 1)
  return p
end

local function common_prefix(list)
  local p = list[1]
  for i = 2, #list do
    local s = list[i]
    local n = 0
    while n < #p and n < #s and p:byte(n + 1) == s:byte(n + 1) do n = n + 1 end
    p = p:sub(1, n)
  end
  return p
end

local function attempted_completion(text, start, e)
  rl.rl_attempted_completion_over = 1 -- never fall back to file names unless asked
  rl.rl_completion_append_character = 0
  if not completer then return nil end
  local line = ffi.string(rl.rl_line_buffer, e)
  local ok, cands, files = pcall(completer, line, start, ffi.string(text))
  if not ok then return nil end
  if files then rl.rl_attempted_completion_over = 0 return nil end
  if type(cands) ~= "table" or #cands == 0 then return nil end
  local arr = ffi.cast("char **", C.sp_rl_malloc(ffi.sizeof("char *") * (#cands + 2)))
  if #cands == 1 then
    arr[0] = cstr(cands[1])
    arr[1] = nil
  else
    arr[0] = cstr(common_prefix(cands))
    for i, s in ipairs(cands) do arr[i] = cstr(s) end
    arr[#cands + 1] = nil
  end
  return arr
end

-- inside a string literal only quotes end the word: a whole path reaches the file-name
-- completion, '/' and '-' included
local function word_breaks()
  if not in_string then return nil end
  local ok, yes = pcall(in_string, ffi.string(rl.rl_line_buffer, rl.rl_point))
  if ok and yes then return keep.string_breaks end
  return keep.breaks
end

--- Set the completer: fn(line_before_cursor, word_start, word) → array of replacements for
-- word (full words, e.g. "spore.load_checkpoint"), or nil, true to complete file names.
-- in_str(line_before_cursor) → true inside a string literal, where a word runs back to the
-- quote (for file names).
function M.set_completer(fn, in_str)
  completer, in_string = fn, in_str
  if rl and not keep.complete_cb then
    keep.complete_cb = ffi.cast("rl_completion_func_t *", attempted_completion)
    rl.rl_attempted_completion_function = keep.complete_cb
    keep.string_breaks = ffi.new("char[3]", "\"'")
    keep.breaks_cb = ffi.cast("rl_cpvfunc_t *", word_breaks)
    rl.rl_completion_word_break_hook = keep.breaks_cb
    rl.rl_sort_completion_matches = 1
  end
end

---------------------------------------------------------------- reading
local got, done
local function on_line(p)
  if p == nil then got = nil
  else
    got = ffi.string(p)
    C.sp_rl_free(p) -- readline's buffer comes from malloc
  end
  done = true
  rl.rl_callback_handler_remove() -- no new prompt until the next read()
end

local pfd = ffi.new("struct sp_rl_pollfd[1]")

--- Read one line with the prompt shown: the line (without newline), nil at end of input
-- (Ctrl-D on an empty line), or false when Ctrl-C cancelled it (the line is cleared and
-- "^C" is shown where it was).
function M.read(prompt)
  if not rl then
    io.write(prompt)
    io.flush()
    local line = io.read("*l")
    if line ~= nil and I.take() then return false end -- Ctrl-C typed on a terminal
    return line
  end
  if not keep.line_cb then keep.line_cb = ffi.cast("rl_vcpfunc_t *", on_line) end
  I.take() -- a Ctrl-C from before this prompt does not cancel it
  done, got = false, nil
  rl.rl_callback_handler_install(prompt, keep.line_cb)
  pfd[0].fd, pfd[0].events = 0, 1 -- POLLIN
  while not done do
    if I.take() then
      -- Ctrl-C: show it at the end of the line, forget the line, new prompt next time
      rl.rl_point = rl.rl_end
      rl.rl_redisplay()
      io.stdout:write("^C")
      io.stdout:flush()
      rl.rl_crlf()
      rl.rl_replace_line("", 1)
      rl.rl_callback_sigcleanup()
      rl.rl_callback_handler_remove()
      return false
    end
    local r = C.sp_rl_poll(pfd, 1, -1)
    if r > 0 then
      rl.rl_callback_read_char()
    elseif r < 0 then
      local err = ffi.errno()
      if err ~= EINTR then
        rl.rl_callback_handler_remove()
        error("readline: poll(stdin) failed (errno " .. err .. ")", 2)
      end
      rl.rl_check_signals() -- a window resize: readline redraws
    end
  end
  return got
end
-- read() calls into readline, which calls back into Lua (the line and completion
-- callbacks): such a C call must not be JIT-compiled
jit.off(M.read)
jit.off(on_line)
jit.off(attempted_completion)
jit.off(word_breaks)

return M
