-- ckpt_underfoot_spec.lua — a checkpoint file that changes after (or while) spore reads
-- it (issue #13, defect 3): loaded values never change and no signal reaches the
-- process; non-regular files are refused at open without blocking. The deterministic
-- truncation-during-read checks are C-level (spec/engine/test_underfoot.c: a read hook
-- shrinks the file between two reads); the race below against a live truncator is #slow.
local H = require("spec.helper")
local spore = require("spore")
local ckpt = spore.ckpt

local bytes_of = H.bytes_of

local function state()
  local list = {}
  for i = 1, 4 do
    local t = spore.randn({ 64, 1000 + i })   -- ~256 KB each: several reads
    list[#list + 1] = { "layer" .. i .. ".weight", t }
  end
  return ckpt.dict(list)
end

local function copies(d)
  local c = {}
  for _, k in ipairs(ckpt.keys(d)) do c[k] = bytes_of(d[k]) end
  return c
end

local function same_as(d, c)
  for _, k in ipairs(ckpt.keys(d)) do
    if bytes_of(d[k]) ~= c[k] then return false, k end
  end
  return true
end

-- overwrite every byte of path in place (same inode, same size)
local function scribble(path)
  local f = assert(io.open(path, "r+b"))
  local n = f:seek("end")
  f:seek("set", 0)
  f:write(string.rep("\127", n))
  f:close()
end

describe("a checkpoint file changed after the load", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  for _, ext in ipairs({ "ckpt", "safetensors" }) do
    it(ext .. ": truncating or overwriting the file leaves the loaded tensors unchanged", function()
      local path = spore.save_checkpoint(state(), dir .. "/s." .. ext)
      local d = spore.load_checkpoint(path)
      local c = copies(d)
      H.write_file(path, "")                     -- truncate to 0 bytes
      collectgarbage(); collectgarbage()
      assert.is_true(same_as(d, c))
      spore.save_checkpoint(state(), path)       -- a new file there
      local d2 = spore.load_checkpoint(path)
      local c2 = copies(d2)
      scribble(path)                             -- same inode, every byte changed
      assert.is_true(same_as(d2, c2))
      assert.is_true(same_as(d, c))
      -- and the file as it is now is refused cleanly, not loaded
      local ok, err = pcall(spore.load_checkpoint, path)
      assert.is_false(ok)
      assert.matches(path, tostring(err), 1, true)
    end)
  end
end)

describe("non-regular files are refused at open", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("a FIFO and a directory: an error naming the file, no blocking", function()
    local fifo = dir .. "/pipe.ckpt"
    assert.equal(0, select(2, H.run("mkfifo '" .. fifo .. "'")))
    local ok, err = pcall(spore.load_checkpoint, fifo)
    assert.is_false(ok)
    assert.matches(fifo, tostring(err), 1, true)
    assert.matches("FIFO", tostring(err), 1, true)
    ok, err = pcall(spore.load_checkpoint, dir)
    assert.is_false(ok)
    assert.matches("directory", tostring(err), 1, true)
  end)

  it("inspect.lua on a FIFO exits with an error instead of blocking", function()
    local fifo = dir .. "/pipe.ckpt"
    assert.equal(0, select(2, H.run("mkfifo '" .. fifo .. "'")))
    local out, rc = H.run("timeout 20 luajit scripts/inspect.lua '" .. fifo .. "' 2>&1")
    assert.are_not.equal(124, rc, "inspect.lua blocked on a FIFO")
    assert.are_not.equal(0, rc)
    assert.matches("FIFO", out, 1, true)
  end)
end)

describe("a checkpoint truncated and rewritten while other processes load it #slow", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  for _, ext in ipairs({ "ckpt", "safetensors" }) do
    it(ext .. ": every load succeeds or fails with a message; none dies of a signal", function()
      local good = spore.save_checkpoint(state(), dir .. "/good." .. ext)
      local path = dir .. "/live." .. ext
      local body = H.read_file(good)
      H.write_file(path, body)
      -- the loader: 200 loads, prints ok/err counts; a signal kills it (rc >= 128)
      local loader = dir .. "/loader.lua"
      H.write_file(loader, ([[
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local ok_n, err_n = 0, 0
for _ = 1, 200 do
  local ok, err = pcall(spore.load_checkpoint, %q)
  if ok then ok_n = ok_n + 1 else
    err_n = err_n + 1
    assert(tostring(err):find(%q, 1, true), "error without the file name: " .. tostring(err))
  end
  collectgarbage()
end
print("loads", ok_n, err_n)
]]):format(path, path))
      -- the truncator: cut the file at changing sizes and restore it, until the loader ends
      local cmd = ("luajit %s > %s/out.txt 2>&1 & L=$!; i=0; while kill -0 $L 2>/dev/null; do "
        .. "i=$((i+1)); truncate -s $(( (i * 7919) %% %d )) %s; cp %s %s.tmp && mv %s.tmp %s; "
        .. "cat %s > %s; sleep 0.005; done; wait $L; echo rc=$?"):format(loader, dir, #body, path, good, path, path, path, good, path)
      local out = H.run(cmd)
      local rc = tonumber(out:match("rc=(%d+)"))
      local log = H.read_file(dir .. "/out.txt")
      assert.equal(0, rc, "loader exit " .. tostring(rc) .. ": " .. log)
      local ok_n, err_n = log:match("loads%s+(%d+)%s+(%d+)")
      assert.is_truthy(ok_n, log)
      assert.equal(200, tonumber(ok_n) + tonumber(err_n))
    end)
  end
end)
