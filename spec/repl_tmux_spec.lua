-- repl_tmux_spec.lua (#slow) — the real REPL on a real terminal, driven through tmux:
-- Ctrl-C at the prompt keeps the state, Ctrl-C stops `while true do end` (twice in a row
-- too), Tab completes spore names, history survives a restart. Needs tmux (scripts/deps.sh).
local H = spec_helper

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("the REPL in a terminal #slow", function()
  local _, rc = H.run("tmux -V >/dev/null 2>&1")
  if rc ~= 0 then
    it("needs tmux", function() pending("tmux is not installed (scripts/deps.sh installs it)") end)
    return
  end

  local sock = "spore_repl_spec_" .. tostring(os.time()) .. "_" .. tostring(math.random(1e6))
  local dir = H.tmpdir()
  local hist = dir .. "/history"

  local function tmux(args) return H.run("tmux -L " .. sock .. " " .. args .. " 2>&1") end
  local function screen(name) return (tmux("capture-pane -p -J -t " .. name .. " -S -200")) end
  local function keys(name, ...)
    local parts = {}
    for _, k in ipairs({ ... }) do parts[#parts + 1] = sh_quote(k) end
    tmux("send-keys -t " .. name .. " " .. table.concat(parts, " "))
  end
  local function type_line(name, text)
    tmux("send-keys -t " .. name .. " -l " .. sh_quote(text))
    keys(name, "Enter")
  end
  -- wait until the screen holds `text` `times` times (default once); returns the screen
  local function wait_for(name, text, times, timeout)
    times, timeout = times or 1, timeout or 10
    local deadline = os.time() + timeout
    local s
    repeat
      s = screen(name)
      local n, i = 0, 1
      while true do
        local a, b = s:find(text, i, true)
        if not a then break end
        n, i = n + 1, b + 1
      end
      if n >= times then return s end
      os.execute("sleep 0.1")
    until os.time() > deadline
    error(("timed out waiting for %q (x%d); the screen:\n%s"):format(text, times, s), 2)
  end
  local function start(name)
    tmux("new-session -d -s " .. name .. " -x 150 -y 60 "
      .. sh_quote("cd " .. H.root .. " && SPORE_HISTORY=" .. hist .. " luajit scripts/repl.lua; echo REPL-EXIT=$?; sleep 60"))
    wait_for(name, "spore> ")
  end

  teardown(function()
    tmux("kill-server")
    os.remove(hist)
    os.remove(dir)
  end)

  it("Ctrl-C at the prompt clears the line and keeps the state", function()
    start("a")
    type_line("a", "x = 42")
    tmux("send-keys -t a -l " .. sh_quote("half typed"))
    wait_for("a", "half typed")
    keys("a", "C-c")
    wait_for("a", "half typed^C")
    type_line("a", "x")
    local s = wait_for("a", "spore> x\n42\n")
    assert.is_nil(s:find("interrupted!", 1, true))
  end)

  it("Ctrl-C stops `while true do end` and the REPL goes on; a second Ctrl-C does no harm", function()
    type_line("a", "while true do end")
    os.execute("sleep 0.5")
    keys("a", "C-c")
    wait_for("a", "interrupted (Ctrl-C)")
    type_line("a", "x + 1")
    wait_for("a", "spore> x + 1\n43\n")
    -- twice in a row while the loop runs, then once more at the prompt
    type_line("a", "local n = 0 while true do n = n + 1 end")
    os.execute("sleep 0.5")
    keys("a", "C-c")
    keys("a", "C-c")
    wait_for("a", "interrupted (Ctrl-C)", 2)
    os.execute("sleep 0.3")
    keys("a", "C-c")
    type_line("a", "x * 2")
    local s = wait_for("a", "spore> x * 2\n84\n")
    assert.is_nil(s:find("REPL-EXIT", 1, true), s)
  end)

  it("Tab completes spore.load_ch to spore.load_checkpoint", function()
    tmux("send-keys -t a -l " .. sh_quote("spore.load_ch"))
    keys("a", "Tab")
    wait_for("a", "spore> spore.load_checkpoint")
    type_line("a", " == spore.ckpt.load_checkpoint")
    wait_for("a", "spore> spore.load_checkpoint == spore.ckpt.load_checkpoint\ntrue\n")
  end)

  it("history survives a restart (Ctrl-D ends the REPL with status 0)", function()
    type_line("a", "print('hist-' .. 6 * 7)")
    wait_for("a", "\nhist-42\n")
    keys("a", "C-d")
    wait_for("a", "REPL-EXIT=0")
    local f = assert(io.open(hist, "rb"))
    local text = f:read("*a")
    f:close()
    assert.matches("^x = 42\nx\nwhile true do end\nx %+ 1\n", text)
    assert.matches("print%('hist%-' %.%. 6 %* 7%)\n$", text)
    assert.is_nil(text:find("half typed", 1, true), "a line cancelled by Ctrl-C is not history")
    start("b")
    keys("b", "Up")
    wait_for("b", "spore> print('hist-' .. 6 * 7)")
    keys("b", "Enter")
    wait_for("b", "\nhist-42\n")
  end)
end)
