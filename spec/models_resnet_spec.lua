-- models_resnet_spec.lua — ResNet50 has MindSpore's model-zoo parameter names, shapes and
-- order (267 tensors, 161 trainable); a training step at 224×224 runs and the loss on the
-- batch falls over 5 Momentum steps; resnet18/34 build; fine-tuning helpers.
local spore = require("spore")
local nn, optim = spore.nn, spore.optim

describe("resnet50", function()
  local net = spore.models.resnet50 { class_num = 1001 }
  local pn = net:parameters_and_names()

  it("has 267 parameters, 161 trainable, in MindSpore's order", function()
    assert.equal(267, #pn)
    assert.equal(161, #net:trainable_params())
    local expect_head = { "conv1.weight", "bn1.moving_mean", "bn1.moving_variance", "bn1.gamma", "bn1.beta",
      "layer1.0.conv1.weight", "layer1.0.bn1.moving_mean", "layer1.0.bn1.moving_variance", "layer1.0.bn1.gamma",
      "layer1.0.bn1.beta", "layer1.0.conv2.weight" }
    for i, n in ipairs(expect_head) do assert.equal(n, pn[i][1]) end
    assert.equal("end_point.weight", pn[266][1])
    assert.equal("end_point.bias", pn[267][1])
    local idx = {}
    for i, e in ipairs(pn) do idx[e[1]] = i end
    -- block order: conv1 bn1 conv2 bn2 conv3 bn3 down_sample_layer.0 down_sample_layer.1
    assert.equal(idx["layer1.0.bn3.beta"] + 1, idx["layer1.0.down_sample_layer.0.weight"])
    assert.equal(idx["layer1.0.down_sample_layer.1.beta"] + 1, idx["layer1.1.conv1.weight"])
    for _, l in ipairs({ 1, 2, 3, 4 }) do
      assert.is_not_nil(idx["layer" .. l .. ".0.down_sample_layer.0.weight"])
      assert.is_nil(idx["layer" .. l .. ".1.down_sample_layer.0.weight"])
    end
    assert.is_not_nil(idx["layer3.5.bn3.moving_variance"])
    assert.is_nil(idx["layer3.6.conv1.weight"])
    assert.is_nil(idx["layer4.3.conv1.weight"])
  end)

  it("has the zoo's shapes", function()
    local d = net:parameters_dict()
    local S = function(n) return d[n].data:shape() end
    assert.same({ 64, 3, 7, 7 }, S("conv1.weight"))
    assert.same({ 64, 64, 1, 1 }, S("layer1.0.conv1.weight"))
    assert.same({ 64, 64, 3, 3 }, S("layer1.0.conv2.weight"))
    assert.same({ 256, 64, 1, 1 }, S("layer1.0.conv3.weight"))
    assert.same({ 256, 64, 1, 1 }, S("layer1.0.down_sample_layer.0.weight"))
    assert.same({ 128, 128, 3, 3 }, S("layer2.0.conv2.weight"))
    assert.same({ 512, 256, 1, 1 }, S("layer2.0.down_sample_layer.0.weight"))
    assert.same({ 2048, 1024, 1, 1 }, S("layer4.0.down_sample_layer.0.weight"))
    assert.same({ 2048 }, S("layer4.2.bn3.moving_mean"))
    assert.same({ 1001, 2048 }, S("end_point.weight"))
    assert.same({ 1001 }, S("end_point.bias"))
    assert.equal(1e-4, net.bn1.eps)
    assert.equal(0.9, net.layer2["0"].bn2.momentum)
    assert.equal(2, net.layer2["0"].conv2.stride[1])
    assert.equal(1, net.layer2["0"].conv1.stride[1])
    assert.equal(false, d["bn1.moving_mean"].requires_grad)
  end)

  it("trains on a batch of 2 at 224x224: the loss falls over 5 Momentum steps", function()
    spore.manual_seed(11)
    local m = spore.models.resnet50 { class_num = 10 }
    local x = spore.randn({ 2, 3, 224, 224 }):to(m:device())
    local y = spore.tensor({ 3, 7 }, "int32"):to(m:device())
    local loss = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
    -- the zoo's initialisation (He-normal convs, every BN gamma 1) on a batch of 2 with
    -- batch statistics oscillates at lr 0.01 (2.42 0.85 3.76 3.47 1.13 3.33); at 0.001 it
    -- descends (2.42 1.54 0.91 0.69 0.82 0.69)
    local opt = optim.Momentum(m:trainable_params(), 0.001, 0.9)
    local losses = {}
    for s = 1, 6 do
      m:zero_grad()
      losses[s] = loss:forward(m(x), y)
      if s <= 5 then
        m:backward(x, loss:backward())
        opt:step()
      end
    end
    assert.equal(5, opt:global_step())
    assert.is_true(losses[6] < losses[1], ("loss %g -> %g"):format(losses[1], losses[6]))
    for _, l in ipairs(losses) do assert.is_true(l == l and l < 1e3) end
    -- moving statistics were updated in training mode
    assert.is_true(math.abs(m.bn1.moving_mean.data:get({ 1 })) > 0)
    print(("\n  resnet50 losses: %s"):format(table.concat((function()
      local r = {}; for i, l in ipairs(losses) do r[i] = ("%.4f"):format(l) end; return r end)(), " ")))
  end)
end)

describe("resnet18 / resnet34", function()
  it("build with basic blocks and run a forward pass", function()
    local r18 = spore.models.resnet18 { class_num = 5 }
    local pn = r18:parameters_and_names()
    assert.equal("end_point.weight", pn[#pn - 1][1])
    assert.same({ 5, 512 }, pn[#pn - 1][2].data:shape())
    assert.equal(62, #r18:trainable_params())
    local y = r18:eval()(spore.randn({ 1, 3, 64, 64 }))
    assert.same({ 1, 5 }, y:shape())
    local r34 = spore.models.resnet34 {}
    assert.equal(110, #r34:trainable_params())
  end)
  it("follow the zoo's ResidualBlockBase: bn1d/bn2d names, 'pad' convs, res_base BN settings", function()
    local r18 = spore.models.resnet18 {}
    local names, d = {}, {}
    for i, kv in ipairs(r18:parameters_and_names()) do names[i] = kv[1]; d[kv[1]] = kv[2] end
    assert.equal(102, #names)
    assert.same({ "conv1.weight", "bn1.moving_mean", "bn1.moving_variance", "bn1.gamma", "bn1.beta",
      "layer1.0.conv1.weight", "layer1.0.bn1d.moving_mean", "layer1.0.bn1d.moving_variance", "layer1.0.bn1d.gamma",
      "layer1.0.bn1d.beta", "layer1.0.conv2.weight", "layer1.0.bn2d.moving_mean" }, { unpack(names, 1, 12) })
    assert.is_nil(d["layer1.0.down_sample_layer.0.weight"]) -- 64 -> 64, stride 1: no down-sampling
    assert.same({ 128, 64, 1, 1 }, d["layer2.0.down_sample_layer.0.weight"].data:shape())
    assert.same({ 128, 64, 3, 3 }, d["layer2.0.conv1.weight"].data:shape())
    -- stem: 7x7/2 pad 3, BN eps 1e-5 momentum 0.1, 1-pixel pad + valid 3x3/2 pool
    assert.equal("pad", r18.conv1.pad_mode)
    assert.same({ 3, 3, 3, 3 }, r18.conv1.padding)
    assert.equal(1e-5, r18.bn1.eps)
    assert.near(0.1, r18.bn1.momentum, 1e-12)
    assert.equal(1e-4, r18.layer2["0"].bn1d.eps)
    assert.equal(1e-5, r18.layer2["0"].down_sample_layer["1"].eps)
    assert.equal(2, r18.layer2["0"].conv1.stride[1])
    -- spatial sizes: 224 -> 112 (conv1) -> 56 (pool) -> ... -> 7 before the mean
    local x = spore.randn({ 1, 3, 224, 224 }):to(r18:device())
    r18:eval()
    assert.same({ 1, 64, 112, 112 }, r18.conv1:forward(x):shape())
    assert.same({ 1, 64, 56, 56 }, r18.maxpool:forward(r18.conv1.output):shape())
  end)
  it("a 'pad' max-pool equals zero padding + 'valid' pooling on non-negative input", function()
    spore.manual_seed(5)
    local x = spore.rand({ 1, 2, 7, 6 })
    local padded = spore.zeros({ 1, 2, 9, 8 })
    for c = 1, 2 do for i = 1, 7 do for j = 1, 6 do padded:set({ 1, c, i + 1, j + 1 }, x:get{ 1, c, i, j }) end end end
    local a = nn.MaxPool2d{ kernel_size = 3, stride = 2, pad_mode = "pad", padding = 1 }:forward(x)
    local b = nn.MaxPool2d(3, 2, "valid"):forward(padded)
    assert.same(b:shape(), a:shape())
    assert.same(b:flat(), a:flat())
  end)
end)

describe("fine-tuning helpers", function()
  it("replace() swaps the head and re-derives names; freeze() stops gradient work", function()
    local net = spore.models.resnet18 { class_num = 1001 }
    net:replace("end_point", nn.Dense(512, 10))
    local pn = net:parameters_and_names()
    assert.equal("end_point.weight", pn[#pn - 1][1])
    assert.same({ 10, 512 }, pn[#pn - 1][2].data:shape())
    net:freeze(function(n) return not n:match("^end_point") end)
    local tp = net:trainable_params()
    assert.equal(2, #tp)
    assert.equal("end_point.weight", tp[1].name)
    local x = spore.randn({ 2, 3, 32, 32 }):to(net:device())
    net:train()
    local loss = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
    loss:forward(net(x), spore.tensor({ 1, 2 }, "int32"):to(net:device()))
    net:backward(x, loss:backward())
    assert.is_nil(net.conv1.weight.grad)
    assert.is_not_nil(net.end_point.weight.grad)
  end)
end)
