-- nn_memory_spec.lua — 2,000 LeNet5 training steps (batch 32, random data, Momentum)
-- keep RSS flat: modules reuse their buffers and optimizer state is allocated once, so
-- the last 1,000 steps grow RSS by less than 2%.
local spore = require("spore")
local H = spec_helper

describe("LeNet5 training memory", function()
  it("2,000 steps at batch 32 grow RSS by < 2% over the last 1,000", function()
    spore.manual_seed(5)
    local net = spore.models.lenet5()
    local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
    local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
    local x = spore.empty({ 32, 1, 32, 32 })
    local y = spore.zeros({ 32 }, "int32")
    local yp = y:ptr()
    local rss_mid, first, last
    for step = 1, 2000 do
      x:normal_(0, 1) -- fresh random batch each step
      for i = 0, 31 do yp[i] = (step + i) % 10 end
      net:zero_grad()
      local l = loss:forward(net(x), y)
      if step == 1 then first = l end
      last = l
      net:backward(x, loss:backward())
      opt:step()
      if step == 1000 then collectgarbage("collect"); rss_mid = H.rss() end
    end
    collectgarbage("collect")
    local rss_end = H.rss()
    local growth = (rss_end - rss_mid) / rss_mid
    print(("\n  lenet 2000 steps: RSS %.1f MB at step 1000, %.1f MB at step 2000 (%+.2f%%), loss %.3f -> %.3f")
      :format(rss_mid / 2^20, rss_end / 2^20, growth * 100, first, last))
    assert.is_true(growth < 0.02, ("RSS grew %.2f%%"):format(growth * 100))
    assert.equal(2000, opt:global_step())
  end)
end)
