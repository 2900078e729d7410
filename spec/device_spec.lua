-- device_spec.lua — the simulated device from Lua: tensors, networks, training,
-- checkpoints and datasets on "sim", checked against the same work on the cpu. sim runs
-- the cpu kernels on memory host code cannot address, so every result must be equal bit
-- for bit, and any host read of device memory (Tensor:ptr()) must be refused.
-- Runs the same under `make test` and `make test SPORE_DEVICE=sim` (the default device
-- is saved and restored around each test).
local spore = require("spore")
local H = spec_helper
local nn = spore.nn

local function same_values(a, b, what)
  assert.same(a:shape(), b:shape(), what)
  local fa, fb = a:flat(), b:flat()
  for i = 1, #fa do
    if fa[i] ~= fb[i] and not (fa[i] ~= fa[i] and fb[i] ~= fb[i]) then
      error(("%s: element %d differs: %.9g vs %.9g"):format(what or "tensor", i, fa[i], fb[i]), 2)
    end
  end
end

local function params_equal(a, b, what)
  local pa, pb = a:parameters_and_names(), b:parameters_and_names()
  assert.equal(#pa, #pb)
  for i = 1, #pa do
    assert.equal(pa[i][1], pb[i][1])
    same_values(pa[i][2].data, pb[i][2].data, (what or "") .. pa[i][1])
  end
end

-- a LeNet built on the cpu from a fixed seed (independent of the default device)
local function lenet_cpu(seed)
  local prev = spore.set_default_device("cpu")
  spore.manual_seed(seed or 1)
  local net = spore.models.lenet5()
  spore.set_default_device(prev)
  return net
end

local function batch(n, seed)
  spore.manual_seed(seed or 3)
  local x = spore.randn({ n, 1, 32, 32 }):to("cpu")
  local y = spore.empty({ n }, "int32", "cpu")
  for i = 1, n do y:set({ i }, (i * 7) % 10) end
  return x, y
end

describe("sim device", function()
  local saved
  before_each(function() saved = spore.get_default_device() end)
  after_each(function() spore.set_default_device(saved) end)

  it("t:to('sim') copies there and back; same device returns self", function()
    local t = spore.tensor({ { 1, 2, 3 }, { 4, 5, 6.5 } })
    local s = t:to("sim")
    assert.equal("sim", s:device())
    assert.equal("cpu", t:device())
    assert.is_false(rawequal(t, s))
    assert.equal(s, s:to("sim"))
    assert.same({ 2, 3 }, s:shape())
    assert.same(t:flat(), s:flat())
    assert.equal(6.5, s:get({ 2, 3 }))
    local back = s:to("cpu")
    assert.equal("cpu", back:device())
    assert.same(t:flat(), back:flat())
    -- writes on the device stay there
    s:set({ 1, 1 }, 42)
    assert.equal(1, t:get({ 1, 1 }))
    assert.equal(42, s:to("cpu"):get({ 1, 1 }))
    assert.equal(42, s:select(1, 1):select(1, 1):item())
  end)

  it("refuses Tensor:ptr() on sim with a message that says how to copy out", function()
    local s = spore.zeros({ 4 }):to("sim")
    local ok, err = pcall(function() return s:ptr() end)
    assert.is_false(ok)
    assert.matches("sim", err)
    assert.matches("host code cannot address", err)
    assert.matches("copy it out", err)
    -- the cpu copy is addressable
    assert.is_not_nil(s:to("cpu"):ptr())
  end)

  it("set_default_device / get_default_device; bad names are refused", function()
    local prev = spore.set_default_device("sim")
    assert.equal(saved, prev)
    assert.equal("sim", spore.get_default_device())
    local net = nn.Dense(3, 2)
    assert.equal("sim", net:device())
    assert.equal("sim", net.weight.data:device())
    assert.equal("sim", net.bias.data:device())
    spore.set_default_device("cpu")
    assert.equal("cpu", nn.Dense(3, 2):device())
    local ok, err = pcall(spore.set_default_device, "tpu")
    assert.is_false(ok)
    assert.matches("device", err)
    assert.equal("cpu", spore.get_default_device())
  end)

  it("the default device comes from the environment variable SPORE_DEVICE, read in Lua", function()
    local prog = [[luajit -e 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local s = require("spore"); local n = s.nn.Dense(2, 2)
      io.write(s.get_default_device(), " ", n:device(), " ", s.device.get())']]
    local out, rc = H.run("SPORE_DEVICE=sim " .. prog .. " 2>&1")
    assert.equal(0, rc, out)
    assert.equal("sim sim sim", out)
    out, rc = H.run("SPORE_DEVICE= " .. prog .. " 2>&1")
    assert.equal(0, rc, out)
    assert.equal("cpu cpu cpu", out)
    out, rc = H.run("SPORE_DEVICE=tpu " .. prog .. " 2>&1")
    assert.not_equal(0, rc)
    assert.matches("environment variable SPORE_DEVICE: expected a device name", out, 1, true)
  end)

  it("modules built on sim hold the cpu-initialised values (seeded generator)", function()
    local a = lenet_cpu(5)
    spore.set_default_device("sim")
    spore.manual_seed(5)
    local b = spore.models.lenet5()
    for _, e in ipairs(b:parameters_and_names()) do assert.equal("sim", e[2].data:device(), e[1]) end
    params_equal(a, b)
  end)

  it("net:to('sim') moves parameters in place (same Parameter objects); forward equals the cpu's", function()
    local cpu, sim = lenet_cpu(1), lenet_cpu(1)
    local before = sim:parameters()
    assert.equal(sim, sim:to("sim"))
    assert.equal("sim", sim:device())
    local after = sim:parameters()
    for i = 1, #before do
      assert.equal(before[i], after[i])
      assert.equal("sim", after[i].data:device())
    end
    local x = batch(4)
    local ref = cpu(x):clone()
    local out = sim(x) -- the cpu input moves to the net's device at the call
    assert.equal("sim", out:device())
    same_values(ref, out, "logits")
    -- and back
    sim:to("cpu")
    assert.equal("cpu", sim:device())
    same_values(ref, sim(x), "logits after to('cpu')")
    local ok, err = pcall(function() sim:to("nowhere") end)
    assert.is_false(ok)
    assert.matches("device", err)
  end)

  it("BatchNorm moving statistics and buffers move with the net; train-mode forward equals the cpu's", function()
    local function build()
      local prev = spore.set_default_device("cpu")
      spore.manual_seed(11)
      local m = nn.SequentialCell({ nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dense(4 * 25, 3) })
      spore.set_default_device(prev)
      return m
    end
    local cpu, sim = build(), build()
    spore.manual_seed(12)
    local x = spore.randn({ 3, 2, 5, 5 }):to("cpu")
    cpu(x)
    sim(x) -- buffers exist on the cpu now
    sim:to("sim")
    assert.equal("sim", sim["1"].moving_mean.data:device())
    -- (BatchNorm + ReLU run fused: the output buffer is the ReLU's, the statistics BN's)
    assert.equal("sim", sim["1"].save_mean:device())
    assert.equal("sim", sim["2"].output:device())
    local a, b = cpu(x):clone(), sim(x)
    same_values(a, b, "train-mode output")
    params_equal(cpu, sim) -- the moving statistics were updated identically (twice)
  end)

  it("3 Momentum training steps of LeNet on sim equal the cpu's bit for bit", function()
    local cpu, sim = lenet_cpu(21), lenet_cpu(21):to("sim")
    local nets = { cpu, sim }
    local opts, losses = {}, {}
    for i, net in ipairs(nets) do
      opts[i] = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
      losses[i] = nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" })
    end
    for step = 1, 3 do
      local x, y = batch(8, 100 + step)
      local vals = {}
      for i, net in ipairs(nets) do
        local dev = net:device()
        local xd, yd = x:to(dev), y:to(dev)
        net:zero_grad()
        local logits = net:forward(xd)
        assert.equal(dev, logits:device())
        vals[i] = losses[i]:forward(logits, yd)
        net:backward(xd, losses[i]:backward():to(dev), false) -- a no-op once the loss allocates on the logits' device
        opts[i]:step()
      end
      assert.equal(vals[1], vals[2], "loss at step " .. step)
    end
    params_equal(cpu, sim, "after 3 steps: ")
    for _, p in ipairs(sim:trainable_params()) do assert.equal("sim", p.grad:device(), p.name) end
  end)

  it("load_checkpoint(path, {net = sim_net}) copies into the sim parameters in place; logits equal the cpu's", function()
    local path = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not path then -- no shared fixture: a checkpoint written by a cpu net
      path = H.tmpdir() .. "/lenet.ckpt"
      spore.save_checkpoint(lenet_cpu(31), path)
    end
    local cpu, sim = lenet_cpu(2), lenet_cpu(3):to("sim")
    local objs = sim:parameters()
    spore.load_checkpoint(path, { net = cpu })
    spore.load_checkpoint(path, { net = sim })
    local now = sim:parameters()
    for i = 1, #objs do
      assert.equal(objs[i], now[i])
      assert.equal("sim", now[i].data:device())
    end
    params_equal(cpu, sim)
    cpu:eval(); sim:eval()
    local x = batch(6, 41)
    same_values(cpu(x):clone(), sim(x), "logits")
    -- load_param_into_net from a dict too
    local sim2 = lenet_cpu(4):to("sim")
    spore.load_param_into_net(sim2, spore.load_checkpoint(path))
    params_equal(cpu, sim2)
  end)

  it("a sim net saves a checkpoint that loads into a cpu net identically", function()
    local sim = lenet_cpu(51):to("sim")
    -- change the values on the device so the file cannot come from the initial cpu copy
    for _, p in ipairs(sim:parameters()) do p.data:mul_(1.5) end
    local dir = H.tmpdir()
    spore.save_checkpoint(sim, dir .. "/sim.ckpt")
    local cpu = lenet_cpu(52)
    spore.load_checkpoint(dir .. "/sim.ckpt", { net = cpu })
    assert.equal("cpu", cpu:device())
    params_equal(sim, cpu)
    -- and MindSpore's safetensors writer as well
    spore.save_checkpoint(sim, dir .. "/sim.safetensors")
    local cpu2 = lenet_cpu(53)
    spore.load_checkpoint(dir .. "/sim.safetensors", { net = cpu2 })
    params_equal(sim, cpu2)
  end)

  it("datasets yield batches on their device option, equal to the cpu batches", function()
    spore.manual_seed(61)
    local images = spore.rand({ 10, 6, 6 }, 0, 255):to("uint8")
    local labels = spore.arange(10, nil, nil, "int32")
    local function ds(dev)
      return spore.data.from_tensors(images, labels, { batch = 4, shuffle = true, seed = 9, device = dev,
        transforms = { spore.data.vision.Rescale(1 / 255, 0), spore.data.vision.HWC2CHW() } })
    end
    local a, b = ds("cpu"), ds("sim")
    assert.equal("sim", b.device)
    local ia, ib = a:batches(), b:batches()
    local n = 0
    while true do
      local xa, ya = ia()
      local xb, yb = ib()
      if xa == nil then assert.is_nil(xb) break end
      n = n + 1
      assert.equal("cpu", xa:device())
      assert.equal("sim", xb:device())
      assert.equal("sim", yb:device())
      same_values(xa, xb, "images of batch " .. n)
      same_values(ya, yb, "labels of batch " .. n)
    end
    assert.equal(3, n) -- 4 + 4 + a short last batch of 2
    local ok, err = pcall(ds, "tpu")
    assert.is_false(ok)
    assert.matches("device", err)
  end)

  it("Model trains and evaluates a sim net from cpu batches exactly as a cpu net", function()
    spore.manual_seed(71)
    local images = spore.rand({ 24, 32, 32 }, 0, 255):to("uint8")
    local labels = spore.empty({ 24 }, "int32")
    for i = 1, 24 do labels:set({ i }, i % 10) end
    local ds = spore.data.from_tensors(images, labels, { batch = 8, shuffle = false, device = "cpu",
      transforms = { spore.data.vision.Rescale(1 / 255, 0), spore.data.vision.HWC2CHW() } })
    local results, nets = {}, { lenet_cpu(72), lenet_cpu(72):to("sim") }
    for i, net in ipairs(nets) do
      local loss = nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" })
      local model = spore.Model(net, loss, spore.optim.Momentum(net:trainable_params(), 0.05, 0.9),
        { metrics = { "accuracy", "loss" } })
      local ctx = model:train(2, ds, { progress = false })
      results[i] = { loss = ctx.loss, eval = model:eval(ds), pred = model:predict(images:select(1, 1):view({ 1, 1, 32, 32 })
        :to("float32")) }
    end
    assert.equal(results[1].loss, results[2].loss)
    assert.same(results[1].eval, results[2].eval)
    assert.equal("sim", results[2].pred:device())
    same_values(results[1].pred, results[2].pred, "predict")
    params_equal(nets[1], nets[2])
  end)
end)
