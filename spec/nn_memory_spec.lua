-- nn_memory_spec.lua — 2,000 LeNet5 training steps (batch 32, random data, Momentum)
-- keep memory flat: modules reuse their buffers and optimizer state is allocated once, so
-- over the last 1,000 steps the engine's live bytes do not change at all and RSS grows by
-- less than 2%. The loop runs in a fresh process, as a user's training run does: inside
-- busted's process the garbage of the specs before it (freed to malloc, not to the
-- system) moves RSS by ±5% in either direction whatever this loop does.
local H = spec_helper

local LOOP = [[
dofile("scripts/boot.lua")
local spore = require("spore")
local function rss()
  local f = io.open("/proc/self/statm", "rb"); local s = f:read("*a"); f:close()
  return tonumber(s:match("^%d+%s+(%d+)")) * 4096
end
spore.manual_seed(5)
local net = spore.models.lenet5()
local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
local x = spore.empty({ 32, 1, 32, 32 })
local y = spore.zeros({ 32 }, "int32")
local yp = y:ptr()
local first, last, rss_mid, live_mid
for step = 1, 2000 do
  x:normal_(0, 1) -- a fresh random batch each step
  for i = 0, 31 do yp[i] = (step + i) % 10 end
  net:zero_grad()
  local l = loss:forward(net(x), y)
  if step == 1 then first = l end
  last = l
  net:backward(x, loss:backward())
  opt:step()
  if step == 1000 then collectgarbage("collect"); rss_mid = rss(); live_mid = spore.mem_stats().live end
end
collectgarbage("collect")
print(("RESULT %d %d %d %d %.6f %.6f %d"):format(rss_mid, rss(), live_mid, spore.mem_stats().live, first, last,
  opt:global_step()))
]]

describe("LeNet5 training memory", function()
  it("2,000 steps at batch 32: engine bytes flat and RSS grows by < 2% over the last 1,000", function()
    local dir = H.tmpdir()
    H.write_file(dir .. "/loop.lua", LOOP)
    local out, rc = H.run("luajit " .. dir .. "/loop.lua 2>&1")
    assert.equal(0, rc, out)
    local rss_mid, rss_end, live_mid, live_end, first, last, steps =
      out:match("RESULT (%d+) (%d+) (%d+) (%d+) (%S+) (%S+) (%d+)")
    assert.is_not_nil(rss_mid, out)
    rss_mid, rss_end = tonumber(rss_mid), tonumber(rss_end)
    local growth = (rss_end - rss_mid) / rss_mid
    print(("\n  lenet 2000 steps: RSS %.1f MB at step 1000, %.1f MB at step 2000 (%+.2f%%), engine %s -> %s bytes, loss %.3f -> %.3f")
      :format(rss_mid / 2^20, rss_end / 2^20, growth * 100, live_mid, live_end, tonumber(first), tonumber(last)))
    assert.equal(live_mid, live_end, "engine live bytes changed between step 1000 and 2000")
    assert.is_true(growth < 0.02, ("RSS grew %.2f%%"):format(growth * 100))
    assert.equal("2000", steps)
  end)
end)
