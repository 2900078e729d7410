-- nn_module_spec.lua — the module protocol: Parameter tables, ordered names, train/eval,
-- zero_grad, buffers reused between calls, replace/freeze, constructors in MindSpore's
-- positional form and option-table form, seeded initializers, lenet5's names and shapes.
local spore = require("spore")
local nn = spore.nn

describe("nn module protocol", function()
  it("Parameter is a plain table {name, data, requires_grad, grad}", function()
    local p = nn.Parameter(spore.zeros({ 2 }), "w", false)
    assert.equal("w", p.name); assert.is_false(p.requires_grad); assert.is_nil(p.grad)
    assert.is_true(nn.Parameter(spore.zeros({ 1 }), "b").requires_grad)
  end)

  it("lenet5 has the tutorial's names and shapes, and runs 32x32 inputs", function()
    local net = spore.models.lenet5 { num_class = 7, num_channel = 3 }
    local want = { { "conv1.weight", { 6, 3, 5, 5 } }, { "conv2.weight", { 16, 6, 5, 5 } }, { "fc1.weight", { 120, 400 } },
      { "fc1.bias", { 120 } }, { "fc2.weight", { 84, 120 } }, { "fc2.bias", { 84 } }, { "fc3.weight", { 7, 84 } },
      { "fc3.bias", { 7 } } }
    local pn = net:parameters_and_names()
    assert.equal(#want, #pn)
    for i, w in ipairs(want) do
      assert.equal(w[1], pn[i][1]); assert.equal(w[1], pn[i][2].name)
      assert.same(w[2], pn[i][2].data:shape())
    end
    assert.same({ 2, 7 }, net(spore.randn({ 2, 3, 32, 32 })):shape())
    assert.equal(8, #net:parameters()); assert.equal(8, #net:trainable_params())
  end)

  it("reuses output and gradient buffers between steps; reallocates on shape change", function()
    local net = spore.models.lenet5()
    local x = spore.randn({ 4, 1, 32, 32 }):to(net:device())
    local y1 = net(x)
    local y2 = net(x)
    assert.equal(y1, y2)
    local g = spore.randn({ 4, 10 }):to(net:device())
    net:backward(x, g)
    local grad1 = net.conv1.weight.grad
    net:backward(x, g)
    assert.equal(grad1, net.conv1.weight.grad)
    local y3 = net(spore.randn({ 2, 1, 32, 32 }))
    assert.same({ 2, 10 }, y3:shape())
  end)

  it("accumulates parameter gradients until zero_grad", function()
    local d = nn.Dense(3, 2)
    local x, g = spore.randn({ 2, 3 }):to(d:device()), spore.randn({ 2, 2 }):to(d:device())
    d(x); d:backward(x, g)
    local once = d.weight.grad:flat()
    d:backward(x, g)
    local twice = d.weight.grad:flat()
    for i = 1, #once do assert.is_true(math.abs(twice[i] - 2 * once[i]) < 1e-5) end
    d:zero_grad()
    for _, v in ipairs(d.weight.grad:flat()) do assert.equal(0, v) end
  end)

  it("train()/eval() propagate and return self; BN uses moving statistics in eval", function()
    local net = nn.SequentialCell({ nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2) })
    assert.equal(net, net:eval())
    assert.is_false(net["1"].training)
    local x = spore.randn({ 2, 1, 5, 5 })
    net(x)
    assert.equal(0, net["1"].moving_mean.data:get({ 1 })) -- no update in eval
    net:train()
    assert.is_true(net["1"].training)
    net(x)
    assert.is_true(net["1"].moving_mean.data:get({ 1 }) ~= 0)
  end)

  it("SequentialCell names children 0, 1, ...; replace() re-derives names", function()
    local net = nn.SequentialCell(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
    local pn = net:parameters_and_names()
    assert.same({ "0.weight", "0.bias", "2.weight", "2.bias" }, { pn[1][1], pn[2][1], pn[3][1], pn[4][1] })
    net:replace("2", nn.Dense(3, 5, { has_bias = false }))
    pn = net:parameters_and_names()
    assert.equal(3, #pn)
    assert.equal("2.weight", pn[3][1])
    assert.same({ 1, 5 }, net(spore.randn({ 1, 4 })):shape())
    assert.has_error(function() net:replace("7", nn.ReLU()) end)
  end)

  it("freeze() by prefix or Lua pattern; unfreeze()", function()
    local net = spore.models.lenet5()
    net:freeze("conv")
    assert.equal(6, #net:trainable_params())
    net:freeze("%.bias$")
    assert.equal(3, #net:trainable_params())
    net:unfreeze()
    assert.equal(8, #net:trainable_params())
  end)

  it("constructors: MindSpore positional order and option tables", function()
    local c = nn.Conv2d(2, 4, 3, 2, "pad", 1, 1, 2, true)
    assert.equal("pad", c.pad_mode); assert.equal(2, c.stride[1]); assert.equal(2, c.group); assert.is_true(c.has_bias)
    assert.same({ 4, 1, 3, 3 }, c.weight.data:shape())
    assert.same({ 1, 4, 3, 3 }, c(spore.randn({ 1, 2, 5, 5 })):shape())
    assert.has_error(function() nn.Conv2d(2, 4, 3, { pad_mode = "full" }) end)
    assert.has_error(function() nn.Conv2d(3, 4, 3, { group = 2 }) end)
    local p = nn.MaxPool2d { kernel_size = 3, stride = 2, pad_mode = "same" }
    assert.same({ 1, 1, 4, 3 }, p(spore.randn({ 1, 1, 7, 5 })):shape())
    local bn = nn.BatchNorm2d(3, 1e-4, 0.99)
    assert.equal(1e-4, bn.eps); assert.equal(0.99, bn.momentum)
    local names = {}
    for _, e in ipairs(bn:parameters_and_names()) do names[#names + 1] = e[1] end
    assert.same({ "moving_mean", "moving_variance", "gamma", "beta" }, names)
    assert.has_error(function() nn.Dense(3, 2)(spore.randn({ 2, 4 })) end)
  end)

  it("initializers are seeded and follow MindSpore's definitions", function()
    spore.manual_seed(42)
    local a = nn.Conv2d(8, 16, 3).weight.data:flat()
    spore.manual_seed(42)
    local b = nn.Conv2d(8, 16, 3).weight.data:flat()
    assert.same(a, b)
    -- HeUniform(sqrt(5)): bound = 1/sqrt(fan_in) = 1/sqrt(72)
    local bound, m = 1 / math.sqrt(72), 0
    for _, v in ipairs(a) do m = math.max(m, math.abs(v)) end
    assert.is_true(m <= bound and m > 0.9 * bound)
    local n = nn.init.initialize(nn.Normal(0.02), { 10000 }):flat()
    local s2 = 0
    for _, v in ipairs(n) do s2 = s2 + v * v end
    assert.is_true(math.abs(math.sqrt(s2 / #n) - 0.02) < 0.002)
    for _, v in ipairs(nn.init.initialize(nn.Uniform(0.07), { 1000 }):flat()) do assert.is_true(math.abs(v) <= 0.07) end
    assert.same({ 0, 0 }, nn.init.initialize("zeros", { 2 }):flat())
    assert.same({ 1, 1 }, nn.init.initialize("ones", { 2 }):flat())
    assert.has_error(function() nn.init.initialize("bogus", { 2 }) end)
  end)

  it("shape errors from the engine name the layer", function()
    local c = nn.Conv2d(3, 4, 3)
    local ok, err = pcall(function() return c(spore.randn({ 1, 2, 5, 5 })) end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("Conv2d"))
  end)

  it("a short last batch resizes the layer's buffers in place instead of reallocating", function()
    local d = nn.Dense(5, 3)
    local dev = d.weight.data:device()
    local x32, x7 = spore.randn({ 32, 5 }):to(dev), spore.randn({ 7, 5 }):to(dev)
    local o1 = d(x32)
    local o2 = d(x7)
    assert.is_true(rawequal(o1, o2), "the output buffer object is kept")
    assert.same({ 7, 3 }, o2:shape())
    -- values are right after the resize: x W^T + b computed independently
    local ref = x7:to("cpu"):matmul(d.weight.data:to("cpu"):t()):add(d.bias.data:to("cpu"))
    assert.is_true((o2:to("cpu") - ref:to("cpu")):abs():max() < 1e-6)
    local before = spore.mem_stats().allocs
    local o3 = d(x32)
    assert.is_true(rawequal(o1, o3))
    assert.same({ 32, 3 }, o3:shape())
    assert.equal(before, spore.mem_stats().allocs, "growing back within capacity allocates nothing")
  end)
end)
