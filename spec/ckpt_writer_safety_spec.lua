-- ckpt_writer_safety_spec.lua — saves that cannot collide or leave debris (issue #13):
-- symlinks are never followed, concurrent savers of one path (real processes) wait for
-- each other and the file is always one writer's whole state, failures leave no temp
-- file and no descriptor, stale temp files of dead saves are cleaned, and duplicate,
-- NUL-carrying or empty saves are refused. Kills during a 200 MB save are tagged #slow.
local H = spec_helper
local spore = require("spore")
local ckpt = require("spore.ckpt")
local lfs = require("lfs")

local function listing(dir, pat)
  local out = {}
  for f in lfs.dir(dir) do
    if f ~= "." and f ~= ".." and (not pat or f:find(pat)) then out[#out + 1] = f end
  end
  table.sort(out)
  return out
end

local function count_fds()
  local n = 0
  for f in lfs.dir("/proc/self/fd") do if f ~= "." and f ~= ".." then n = n + 1 end end
  return n
end

local function read_all(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_all(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

local function my_pid()
  return tonumber(read_all("/proc/self/stat"):match("^(%d+)"))
end

local function dead_pid() -- the pid of a shell that has exited
  local out = H.run("sh -c 'echo $$'")
  return tonumber(out:match("(%d+)"))
end

-- The value v when the file holds exactly one float32 tensor "w" of n elements all equal to v.
local function whole_value(path, n)
  local ok, d = pcall(ckpt.load_checkpoint, path)
  if not ok then return nil, d end
  local keys = ckpt.keys(d)
  if #keys ~= 1 or keys[1] ~= "w" then return nil, "entries: " .. table.concat(keys, ",") end
  local t = d.w
  if t:numel() ~= n then return nil, "numel " .. t:numel() end
  local v = t:get({ 1 })
  if t:count_equal(spore.full({ n }, v)) ~= n then return nil, "mixed content" end
  return v
end

-- A writer process: builds an n-element state of value v, says it is ready, waits for
-- the start file, saves, prints "saved". With loop = true it saves v, v+1, ... forever.
local WRITER = [[
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local path, v, n, ready, go, loop = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5], arg[6] == "loop"
local t = spore.full({ n }, v)
io.open(ready, "wb"):close()
while not io.open(go, "rb") do os.execute("sleep 0.005") end
repeat
  spore.save_checkpoint({ w = t }, path)
  io.write("saved ", v, "\n") io.flush()
  v = v + 1
  t:fill_(v)
until not loop
]]

local function luajit() return os.getenv("LUAJIT") or "luajit" end

-- One race: two processes save distinct same-size states to path at once.
-- Returns the final value, the two values, the two exit codes.
local function race(dir, path, n, a, b)
  local script = dir .. "/writer.lua"
  write_all(script, WRITER)
  os.remove(dir .. "/go"); os.remove(dir .. "/r0"); os.remove(dir .. "/r1")
  local cmd = string.format(
    "cd %q && (%s %q %q %d %d %q %q > %q 2>&1 & p0=$!; %s %q %q %d %d %q %q > %q 2>&1 & p1=$!; " ..
    "while [ ! -e %q ] || [ ! -e %q ]; do sleep 0.01; done; touch %q; wait $p0; echo rc0=$?; wait $p1; echo rc1=$?)",
    H.root, luajit(), script, path, a, n, dir .. "/r0", dir .. "/go", dir .. "/o0",
    luajit(), script, path, b, n, dir .. "/r1", dir .. "/go", dir .. "/o1",
    dir .. "/r0", dir .. "/r1", dir .. "/go")
  local out = H.run(cmd)
  local rc0, rc1 = tonumber(out:match("rc0=(%d+)")), tonumber(out:match("rc1=(%d+)"))
  local v, why = whole_value(path, n)
  return v, why, rc0, rc1, (read_all(dir .. "/o0") or "") .. (read_all(dir .. "/o1") or "")
end

describe("checkpoint writer safety", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("refuses an empty checkpoint: nothing is written", function()
    local ok, err = pcall(ckpt.save_checkpoint, {}, tmp .. "/e.ckpt")
    assert.is_false(ok)
    assert.matches("nothing to save", err)
    assert.matches("e.ckpt", err, 1, true)
    local net = { w = spore.zeros({ 2 }) }
    ok, err = pcall(ckpt.save_checkpoint, net, tmp .. "/f.safetensors", { choice_func = function() return false end })
    assert.is_false(ok)
    assert.matches("no entries", err)
    ok = pcall(ckpt.write_raw, tmp .. "/g.ckpt", {}, { format = "ckpt" })
    assert.is_false(ok)
    assert.same({}, listing(tmp))
  end)

  it("refuses duplicate names and names with a NUL byte, naming them and the file", function()
    local z = spore.zeros({ 2 })
    local ok, err = pcall(ckpt.save_checkpoint, { { name = "a", data = z }, { name = "a", data = z } }, tmp .. "/d.ckpt")
    assert.is_false(ok)
    assert.matches("tensor 'a' appears twice in '" .. tmp .. "/d.ckpt'", err, 1, true)
    ok, err = pcall(ckpt.save_checkpoint, { a = z }, tmp .. "/d.ckpt", { append_dict = { a = 1 } })
    assert.is_false(ok)
    assert.matches("'a' appears twice", err, 1, true)
    for _, obj in ipairs({ { ["x\0y"] = z }, { { name = "x\0y", data = z } } }) do
      ok, err = pcall(ckpt.save_checkpoint, obj, tmp .. "/n.ckpt")
      assert.is_false(ok)
      assert.matches("contains a NUL byte", err, 1, true)
      assert.matches("n.ckpt", err, 1, true)
      assert.is_nil(err:find("\n"))
    end
    ok, err = pcall(ckpt.save_checkpoint, { a = z }, tmp .. "/n.ckpt", { append_dict = { { "s\0", "text" } } })
    assert.is_false(ok)
    assert.matches("contains a NUL byte", err, 1, true)
    ok, err = pcall(ckpt.write_raw, tmp .. "/n.safetensors", { { name = "p", tensor = z }, { name = "p", tensor = z } },
      { format = "safetensors" })
    assert.is_false(ok)
    assert.matches("'p' appears twice", err, 1, true)
    assert.same({}, listing(tmp))
  end)

  it("convert.lua of an empty input fails with one line and writes nothing", function()
    local empty = tmp .. "/empty.safetensors"
    write_all(empty, "\8\0\0\0\0\0\0\0{}      ")
    local out, rc = H.run(string.format("cd %q && %s scripts/convert.lua %q %q 2>&1", H.root, luajit(), empty, tmp .. "/o.ckpt"))
    assert.are_not.equal(0, rc)
    assert.equal(1, select(2, out:gsub("\n", "")))
    assert.matches("nothing to write", out)
    local src = tmp .. "/one.ckpt"
    ckpt.save_checkpoint({ w = spore.ones({ 3 }) }, src)
    write_all(tmp .. "/drop.lua", "return { function() return nil end }")
    out, rc = H.run(string.format("cd %q && %s scripts/convert.lua %q %q --rename %q 2>&1", H.root, luajit(), src,
      tmp .. "/o.safetensors", tmp .. "/drop.lua"))
    assert.are_not.equal(0, rc)
    assert.equal(1, select(2, out:gsub("\n", "")))
    assert.same({ "drop.lua", "empty.safetensors", "one.ckpt" }, listing(tmp))
  end)

  it("never follows a planted symlink (old temp name, lock name)", function()
    local path, victim = tmp .. "/m.ckpt", tmp .. "/victim.txt"
    write_all(victim, "precious")
    assert(lfs.link(victim, path .. ".tmp", true))
    ckpt.save_checkpoint({ w = spore.full({ 4 }, 2) }, path)
    assert.equal("precious", read_all(victim))
    assert.equal(2, whole_value(path, 4))
    assert.equal("link", lfs.symlinkattributes(path .. ".tmp", "mode"))
    assert(lfs.link(victim, tmp .. "/.m.ckpt.lock", true))
    local ok, err = pcall(ckpt.save_checkpoint, { w = spore.full({ 4 }, 3) }, path)
    assert.is_false(ok)
    assert.matches("lock", err)
    assert.equal("precious", read_all(victim))
    assert.equal(2, whole_value(path, 4))
    assert.same({}, listing(tmp, "spore%-"))
  end)

  it("an error in the middle of a save leaves no temp file and no open descriptor", function()
    local path = tmp .. "/x.safetensors"
    ckpt.save_checkpoint({ w = spore.full({ 4 }, 1) }, path)
    local before = count_fds()
    for _ = 1, 3 do
      -- a str entry cannot go into safetensors: refused after the writer opened
      local ok, err = pcall(ckpt.save_checkpoint, { w = spore.full({ 4 }, 5) }, path, { append_dict = { note = "text" } })
      assert.is_false(ok)
      assert.matches("note", err)
      -- a Lua error between open and commit (not a tensor)
      ok = pcall(ckpt.write_raw, path, { { name = "a", tensor = spore.ones({ 2 }) }, { name = "b", tensor = 42 } },
        { format = "safetensors" })
      assert.is_false(ok)
    end
    assert.equal(before, count_fds())
    assert.same({ "x.safetensors" }, listing(tmp))
    assert.equal(1, whole_value(path, 4))
    ckpt.save_checkpoint({ w = spore.full({ 4 }, 6) }, path) -- the lock was released
    assert.equal(6, whole_value(path, 4))
  end)

  it("cleans a stale temp file of a dead save; keeps a live one and files of other names", function()
    local path = tmp .. "/s.ckpt"
    local dead = string.format(".s.ckpt.spore-%d-0123456789abcdef.tmp", dead_pid())
    local live = string.format(".s.ckpt.spore-%d-fedcba9876543210.tmp", my_pid())
    local other = string.format(".t.ckpt.spore-%d-0123456789abcdef.tmp", dead_pid())
    for _, f in ipairs({ dead, live, other, "s.ckpt.tmp" }) do write_all(tmp .. "/" .. f, "junk") end
    ckpt.save_checkpoint({ w = spore.ones({ 3 }) }, path)
    local want = { live, other, "s.ckpt", "s.ckpt.tmp" }
    table.sort(want)
    assert.same(want, listing(tmp))
  end)

  it("two processes saving one path at once: both succeed, the file is one whole state", function()
    local path, n = tmp .. "/r.ckpt", 1024 * 1024
    for i = 1, 3 do
      local a, b = 10 * i, 10 * i + 1
      local v, why, rc0, rc1, out = race(tmp, path, n, a, b)
      assert.equal(0, rc0, out)
      assert.equal(0, rc1, out)
      assert.is_true(v == a or v == b, tostring(why))
    end
    assert.same({}, listing(tmp, "spore%-"))
    assert.same({}, listing(tmp, "%.lock$"))
  end)
end)

describe("checkpoint writer under stress #slow", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("16 two-writer races of 8 MB states on one path", function()
    local path, n = tmp .. "/r.ckpt", 2 * 1024 * 1024
    local wins = {}
    for i = 1, 16 do
      local a, b = 2 * i, 2 * i + 1
      local v, why, rc0, rc1, out = race(tmp, path, n, a, b)
      assert.equal(0, rc0, out)
      assert.equal(0, rc1, out)
      assert.is_true(v == a or v == b, "race " .. i .. ": " .. tostring(why))
      wins[#wins + 1] = v == a and "a" or "b"
    end
    print("\n16 races, last committer per race: " .. table.concat(wins))
    assert.same({}, listing(tmp, "spore%-"))
  end)

  it("20 SIGKILLs during a 200 MB save: the old or the new file, whole; no pile of temp files", function()
    local path, n = tmp .. "/k.ckpt", 50 * 1000 * 1000
    ckpt.save_checkpoint({ w = spore.full({ n }, 0) }, path)
    local script = tmp .. "/writer.lua"
    write_all(script, WRITER)
    write_all(tmp .. "/go", "")
    local max_tmp, saved = 0, 0
    math.randomseed(13)
    local base = 1000
    for k = 1, 20 do
      local delay = 0.3 + math.random() * 2.5
      local out = H.run(string.format(
        "cd %q && %s %q %q %d %d %q %q loop > %q 2>&1 & p=$!; sleep %.3f; kill -9 $p; wait $p 2>/dev/null; true",
        H.root, luajit(), script, path, base, n, tmp .. "/ready", tmp .. "/go", tmp .. "/out", delay))
      local log = read_all(tmp .. "/out") or ""
      for _ in log:gmatch("saved") do saved = saved + 1 end
      local v, why = whole_value(path, n)
      assert.is_not_nil(v, "kill " .. k .. " after " .. delay .. " s: " .. tostring(why) .. out)
      assert.is_true(v == 0 or (v >= 1000 and v < base + 1000), "kill " .. k .. ": value " .. tostring(v))
      local temps = #listing(tmp, "spore%-")
      if temps > max_tmp then max_tmp = temps end
      base = base + 1000
    end
    ckpt.save_checkpoint({ w = spore.full({ 4 }, 7) }, path) -- a normal save cleans up what the kills left
    print(string.format("\n20 kills: every file whole; %d saves completed between kills; at most %d temp files at once",
      saved, max_tmp))
    assert.is_true(max_tmp <= 20)
    assert.same({}, listing(tmp, "spore%-"))
    assert.same({}, listing(tmp, "%.lock$"))
  end)
end)
