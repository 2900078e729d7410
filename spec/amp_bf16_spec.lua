-- amp_bf16_spec.lua — Model(..., {amp_level = "O2"}) on the CPU (spore.train.amp): Conv2d and
-- Dense in bfloat16 (engine/cpu/bf16*.c; the kernels' numerics are checked against the
-- naive bf16 GEMM in spec/engine/test_reference.c), BatchNorm and the loss in float32,
-- float32 master weights and checkpoints; and the backward pass that stops where nothing
-- upstream needs a gradient (spore.nn.chain). Runs on cpu and on sim (SPORE_DEVICE=sim).
local H = require("spec.helper")
local spore = require("spore")
local nn, amp = spore.nn, spore.train.amp

local function maxdiff(a, b)
  local d = (a - b):abs():max()
  if type(d) ~= "number" then d = d:item() end
  return d
end

describe("amp_level O2 (bfloat16 on the CPU)", function()
  it("marks Conv2d and Dense, leaves BatchNorm float32, keeps names and float32 parameters", function()
    local net = spore.models.resnet18 { class_num = 10 }
    local before = {}
    for _, e in ipairs(net:parameters_and_names()) do before[#before + 1] = e[1] end
    spore.Model(net, nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" },
      spore.optim.Momentum(net:trainable_params(), 0.01, 0.9), { amp_level = "O2" })
    local convs, dense = 0, 0
    for _, e in ipairs(net:cells_and_names()) do
      local m, name = e[2], getmetatable(e[2]).__name
      if name == "Conv2d" then convs = convs + 1; assert.is_true(rawget(m, "_bf16")) end
      if name == "Dense" then dense = dense + 1; assert.is_true(rawget(m, "_bf16")) end
      if name == "BatchNorm2d" then assert.is_nil(rawget(m, "_bf16")) end
    end
    assert.equal(20, convs); assert.equal(1, dense)
    for i, e in ipairs(net:parameters_and_names()) do
      assert.equal(before[i], e[1]); assert.equal("float32", e[2].data:dtype())
    end
    amp.auto_mixed_precision(net, "O0")
    for _, e in ipairs(net:cells_and_names()) do assert.is_nil(rawget(e[2], "_bf16")) end
  end)

  it("refuses O1, O3 and unknown levels by name", function()
    local net = spore.models.lenet5()
    assert.has_error(function() amp.auto_mixed_precision(net, "O3") end,
      "auto_mixed_precision: amp_level 'O3' is MindSpore's, but spore implements amp_level 'O0' and 'O2' (O3 runs BatchNorm in low precision too: not implemented)")
    assert.has_error(function() spore.Model(net, nil, nil, { amp_level = "O1" }) end)
  end)

  it("LeNet forward and backward in bf16 stay close to float32 (bf16 rounding only)", function()
    spore.manual_seed(7)
    local a, b = spore.models.lenet5(), spore.models.lenet5()
    local pb = b:parameters()
    for i, p in ipairs(a:parameters()) do pb[i].data:copy_(p.data) end
    amp.auto_mixed_precision(b, "O2")
    local x = spore.randn({ 16, 1, 32, 32 }):to(a:device())
    local ya, yb = a(x), b(x)
    local scale = ya:abs():max()
    if type(scale) ~= "number" then scale = scale:item() end
    local d = maxdiff(ya, yb)
    assert.is_true(d > 0, "bf16 must differ from float32 somewhere")
    assert.is_true(d < 0.03 * scale + 1e-3, ("|bf16 - f32| = %g (scale %g)"):format(d, scale))
    local g = spore.randn(ya:shape()):to(a:device())
    a:zero_grad(); b:zero_grad()
    a:backward(x, g, false); b:backward(x, g, false)
    -- gradients: the same direction (cosine), every layer down to conv1
    for _, k in ipairs({ "fc3", "fc1", "conv2", "conv1" }) do
      local ga, gb = a[k].weight.grad:to("cpu"), b[k].weight.grad:to("cpu")
      local pa, pb = ga:ptr(), gb:ptr()
      local dot, na, nb = 0, 0, 0
      for i = 0, ga:numel() - 1 do dot = dot + pa[i] * pb[i]; na = na + pa[i] ^ 2; nb = nb + pb[i] ^ 2 end
      local cos = dot / math.sqrt(na * nb)
      assert.is_true(cos > 0.99, ("%s weight gradient: cosine %g"):format(k, cos))
    end
  end)

  it("trains: Model O2 follows float32's loss trajectory and lowers the loss", function()
    local function run(level)
      spore.manual_seed(3)
      local net = spore.models.lenet5()
      local loss = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
      local m = spore.Model(net, loss, spore.optim.Momentum(net:trainable_params(), 0.05, 0.9), { amp_level = level })
      local x = spore.randn({ 32, 1, 32, 32 }):to(net:device())
      local y = spore.tensor({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1 },
        "int32"):to(net:device())
      local ls = {}
      for i = 1, 15 do ls[i] = m:_train_step(x, y, {}) end
      return ls
    end
    local f32, b16 = run("O0"), run("O2")
    assert.is_true(b16[15] < b16[1] - 0.005, ("bf16 loss %g -> %g"):format(b16[1], b16[15]))
    for i = 1, 15 do assert.is_true(math.abs(f32[i] - b16[i]) < 0.02, ("step %d: %g vs %g"):format(i, f32[i], b16[i])) end
  end)
end)

describe("the bf16 GEMM's microkernels (spore.config().bf16_kernel)", function()
  local c0 = spore.config()
  it("reports the one that runs and those this CPU has, fastest first; portable is always there", function()
    local ks = c0.bf16_kernels
    assert.equal(ks[1], c0.bf16_kernel)
    assert.equal("portable", ks[#ks])
    local rank = { amx = 3, avx512 = 2, portable = 1 }
    for i = 2, #ks do assert.is_true(rank[ks[i - 1]] > rank[ks[i]]) end
    if amp.cpu_has_bf16() then assert.is_true(rank[ks[1]] >= 2) end
  end)
  it("refuses an unknown kernel and one this CPU does not run, by name", function()
    assert.has_error(function() spore.config { bf16_kernel = "tpu" } end,
      "bf16 kernel must be one of 'amx', 'avx512', 'portable', got 'tpu'")
    assert.has_error(function() spore.config { bf16_kernel = 2 } end, "spore.config: bf16_kernel must be a string, got number")
    local have = {}
    for _, k in ipairs(c0.bf16_kernels) do have[k] = true end
    for _, k in ipairs({ "amx", "avx512" }) do
      if not have[k] then
        local ok, err = pcall(spore.config, { bf16_kernel = k })
        assert.is_false(ok)
        assert.matches("bf16 kernel '" .. k .. "' does not run here", err, 1, true)
      end
    end
    assert.same(c0, spore.config())
  end)
  it("every kernel gives a conv/dense net's float32 answer up to bf16 rounding, and each other's up to summation order", function()
    spore.manual_seed(11)
    -- channel and pixel counts off the 16/32 blocks, an odd K (3 * 5 * 5 = 75), a 1-column Dense
    local net = nn.SequentialCell {
      nn.Conv2d(3, 37, 5, { pad_mode = "valid", has_bias = true }), nn.ReLU(),
      nn.Conv2d(37, 20, 3, { stride = 2, pad_mode = "pad", padding = 1 }), nn.ReLU(),
      nn.Flatten(), nn.Dense(20 * 6 * 6, 1),
    }
    local x = spore.randn({ 3, 3, 15, 15 }):to(net:device())
    local ref = net(x):clone()
    amp.auto_mixed_precision(net, "O2")
    local out = {}
    for _, k in ipairs(c0.bf16_kernels) do
      spore.config { bf16_kernel = k }
      out[k] = net(x):clone()
    end
    spore.config { bf16_kernel = c0.bf16_kernel }
    amp.auto_mixed_precision(net, "O0")
    local scale = ref:abs():max()
    if type(scale) ~= "number" then scale = scale:item() end
    for k, y in pairs(out) do
      local d = maxdiff(y, ref)
      assert.is_true(d > 0 and d < 0.03 * scale + 1e-3, ("%s: |bf16 - f32| = %g (scale %g)"):format(k, d, scale))
      local dp = maxdiff(y, out.portable)
      assert.is_true(dp < 1e-4 * scale + 1e-6, ("%s vs portable: %g (scale %g)"):format(k, dp, scale))
    end
  end)
  it("SPORE_BF16_KERNEL picks one at require time; an unknown one is one error line", function()
    local lua = "luajit -e 'package.path=\"lua/?.lua;lua/?/init.lua;bindings/?.lua;\"..package.path; "
      .. "io.write(require(\"spore\").config().bf16_kernel)' 2>&1"
    local out, rc = H.run("SPORE_BF16_KERNEL=portable " .. lua)
    assert.equal(0, rc, out); assert.equal("portable", out)
    out, rc = H.run("SPORE_BF16_KERNEL=fast " .. lua)
    assert.not_equal(0, rc)
    assert.matches("SPORE_BF16_KERNEL: bf16 kernel must be one of 'amx', 'avx512', 'portable', got 'fast'", out, 1, true)
  end)
end)

describe("backward stops where nothing upstream needs a gradient", function()
  local function spy_backward(net)
    local calls = {}
    for _, e in ipairs(net:cells_and_names()) do
      local m, name = e[2], e[1]
      local orig = m.backward
      rawset(m, "backward", function(self, ...) calls[name] = (calls[name] or 0) + 1; return orig(self, ...) end)
    end
    return calls
  end
  it("a frozen ResNet body with a new head: only the head runs backward; its gradients are unchanged", function()
    spore.manual_seed(5)
    local net = spore.models.resnet18 { class_num = 10 }
    net.end_point = nn.Dense(512, 4)
    local x = spore.randn({ 1, 3, 32, 32 }):to(net:device())
    local g = spore.randn({ 1, 4 }):to(net:device())
    net(x); net:zero_grad(); net:backward(x, g, false)
    local full = net.end_point.weight.grad:clone()
    net:freeze(); net:unfreeze("end_point")
    local calls = spy_backward(net)
    net(x); net:zero_grad(); net:backward(x, g, false)
    assert.equal(1, calls["end_point"])
    assert.is_nil(calls["layer4"]); assert.is_nil(calls["conv1"]); assert.is_nil(calls["mean"])
    assert.is_nil(net.layer1["0"].conv1.weight.grad)
    assert.equal(0, maxdiff(full, net.end_point.weight.grad))
  end)
  it("a trainable layer deep in the body runs backward down to it, and no further", function()
    spore.manual_seed(6)
    local net = spore.models.resnet18 { class_num = 10 }
    net:freeze(); net:unfreeze("layer4.1.")
    local calls = spy_backward(net)
    local dev = net:device()
    local x = spore.randn({ 1, 3, 32, 32 }):to(dev)
    net(x); net:zero_grad(); net:backward(x, spore.randn({ 1, 10 }):to(dev), false)
    assert.equal(1, calls["layer4"]); assert.equal(1, calls["layer4.1"]); assert.equal(1, calls["layer4.1.conv1"])
    assert.is_nil(calls["layer4.0"]); assert.is_nil(calls["layer3"])
    assert.is_not_nil(net.layer4["1"].conv1.weight.grad)
    -- input gradient asked for: every module runs
    calls = spy_backward(net)
    net(x); net:backward(x, spore.randn({ 1, 10 }):to(dev))
    assert.equal(1, calls["conv1"])
  end)
end)

describe("amp_level O2 on Fashion-MNIST #slow", function()
  it("LeNet5, one epoch from scratch: O2's test accuracy within 0.005 of float32's", function()
    if not io.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") then
      return pending("Debian's dataset-fashion-mnist missing")
    end
    local tmp = H.tmpdir()
    local acc = {}
    for _, level in ipairs({ "O0", "O2" }) do
      local out, rc = H.run(("luajit scripts/train.lua --net lenet5 --dataset fashion-mnist --epochs 1 --seed 1 "
        .. "--out %s/%s --amp-level %s --quiet --no-plot 2>&1"):format(tmp, level, level))
      assert.equal(0, rc, out)
      acc[level] = require("spore.json").decode(out:match("([^\n]*)\n?$")).accuracy
    end
    print(("\n  fashion-mnist lenet5 1 epoch: float32 %.4f, bf16 %.4f"):format(acc.O0, acc.O2))
    assert.is_true(math.abs(acc.O0 - acc.O2) <= 0.005, ("float32 %.4f vs bf16 %.4f"):format(acc.O0, acc.O2))
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
