-- conv_kernel_spec.lua — which kernels run convolutions on the CPU (spore.config{conv_kernel=},
-- SPORE_CONV_KERNEL; engine/cpu/conv_dnnl.c): "spore" (im2col + OpenBLAS, Winograd, spore's
-- bf16 GEMM), "onednn" (Debian's oneDNN for every convolution, where libspore was built
-- with it) and "auto" (the default with oneDNN: oneDNN for the channels-last layers of
-- chains, spore's kernels for the rest). The kernels' numerics against naive loops are in spec/engine
-- (nn_conv2d_vs_naive, nn_conv_bn_vs_naive, reference_conv2d, each under every kernel);
-- here whole nets agree across kernels, in eval (the fused conv -> BN -> join -> ReLU),
-- training (gradients) and O2. Runs on cpu and on sim (SPORE_DEVICE=sim).
local H = require("spec.helper")
local spore = require("spore")
local nn, amp = spore.nn, spore.train.amp

local c0 = spore.config()
local have = {}
for _, k in ipairs(c0.conv_kernels) do have[k] = true end

local function maxdiff(a, b)
  local d = (a - b):abs():max()
  if type(d) ~= "number" then d = d:item() end
  return d
end
local function amax(a)
  local d = a:abs():max()
  if type(d) ~= "number" then d = d:item() end
  return d
end

-- ResNet18 (7x7/2 stem, residual joins, strided 1x1 downsamples, 3x3 layers) with its
-- BatchNorm statistics moved away from 0/1, so the eval fold matters
local function resnet()
  spore.manual_seed(5)
  return H.perturb_batchnorm(spore.models.resnet18 { class_num = 10 })
end

describe("spore.config().conv_kernel", function()
  it("reports the selection and the kernels this build has; auto is the default with oneDNN", function()
    assert.is_true(have.spore and have.auto)
    assert.equal(have.onednn and "auto" or "spore", c0.conv_kernel)
    assert.same(have.onednn and { "auto", "spore", "onednn" } or { "auto", "spore" }, c0.conv_kernels)
    for _, k in ipairs(c0.conv_kernels) do
      local c = spore.config { conv_kernel = k }
      assert.equal(k, c.conv_kernel)
    end
    spore.config { conv_kernel = c0.conv_kernel }
    assert.same(c0, spore.config())
  end)
  it("refuses an unknown kernel, a wrong type and one this build lacks, by name", function()
    assert.has_error(function() spore.config { conv_kernel = "mkl" } end,
      "conv kernel must be one of 'auto', 'spore', 'onednn', got 'mkl'")
    assert.has_error(function() spore.config { conv_kernel = 1 } end,
      "spore.config: conv_kernel must be a string, got number")
    if not have.onednn then
      local ok, err = pcall(spore.config, { conv_kernel = "onednn" })
      assert.is_false(ok)
      assert.matches("conv kernel 'onednn' is not available", err, 1, true)
    end
    assert.same(c0, spore.config())
  end)
  it("SPORE_CONV_KERNEL picks one at require time; an unknown one is one error line", function()
    local lua = "luajit -e 'package.path=\"lua/?.lua;lua/?/init.lua;bindings/?.lua;\"..package.path; "
      .. "io.write(require(\"spore\").config().conv_kernel)' 2>&1"
    local want = have.onednn and "onednn" or "spore"
    local out, rc = H.run("SPORE_CONV_KERNEL=" .. want .. " " .. lua)
    assert.equal(0, rc, out); assert.equal(want, out)
    out, rc = H.run("SPORE_CONV_KERNEL=fastest " .. lua)
    assert.not_equal(0, rc)
    assert.matches("SPORE_CONV_KERNEL: conv kernel must be one of 'auto', 'spore', 'onednn', got 'fastest'", out, 1, true)
  end)
end)

-- one forward and backward (upstream gradient ones): outputs, the input's gradient, every
-- trainable parameter's gradient
local function grads(net, xs)
  net:zero_grad()
  local y = net(xs)
  local gx = net:backward(xs, spore.ones(y:shape()):to(y:device())):clone()
  local g = {}
  for _, p in ipairs(net:trainable_params()) do g[#g + 1] = net:grad_of(p):clone() end
  return { y = y:clone(), gx = gx, g = g }
end

local function each_kernel(fn)
  local out = {}
  for _, k in ipairs(c0.conv_kernels) do
    spore.config { conv_kernel = k }
    local ok, err = pcall(fn, k)
    spore.config { conv_kernel = c0.conv_kernel }
    assert(ok, err)
    out[k] = err
  end
  return out
end

describe("whole nets under each conv kernel", function()
  local x
  before_each(function()
    spore.manual_seed(9)
    x = spore.randn({ 2, 3, 33, 31 })
  end)

  it("eval: the fused conv -> BatchNorm -> join -> ReLU chain gives the same answer", function()
    local net = resnet()
    net:eval()
    local xs = x:to(net:device())
    local out = each_kernel(function() return net(xs):clone() end)
    local s = amax(out.spore)
    for k, y in pairs(out) do
      assert.is_true(maxdiff(y, out.spore) < 1e-4 * s + 1e-6, ("%s vs spore: %g (scale %g)"):format(k, maxdiff(y, out.spore), s))
    end
    if out.onednn then assert.is_true(maxdiff(out.onednn, out.spore) > 0, "onednn ran other sums than spore's kernels") end
  end)

  it("training: outputs, the input's gradient and every parameter's gradient agree", function()
    local net = resnet()
    net:train(true)
    local xs = x:to(net:device())
    local res = each_kernel(function() return grads(net, xs) end)
    for k, r in pairs(res) do
      local s = amax(res.spore.y)
      assert.is_true(maxdiff(r.y, res.spore.y) < 1e-4 * s + 1e-6, k .. ": outputs")
      local gs = amax(res.spore.gx)
      -- the input's gradient comes back through every BatchNorm's backward in training mode
      -- (layer4's has 2 values a channel at this size) and every ReLU's mask, which a
      -- forward value within rounding of 0 flips: sums in another order differ by 2.5e-4 of
      -- the largest (oneDNN 2.6 on an AMD Zen 5; 2e-4 passed on the Intel machines before;
      -- the same nets in eval mode agree to 7e-7); a wrong one is O(1)
      assert.is_true(maxdiff(r.gx, res.spore.gx) < 1e-3 * gs + 1e-6,
        ("%s: input gradient differs by %g (scale %g)"):format(k, maxdiff(r.gx, res.spore.gx), gs))
      -- parameter gradients sum over the batch and positions (BatchNorm's with cancellation):
      -- float32 sums in another order differ by up to ~3e-4 of the largest; a wrong one is O(1)
      assert.equal(#res.spore.g, #r.g)
      for i, g in ipairs(r.g) do
        gs = amax(res.spore.g[i])
        assert.is_true(maxdiff(g, res.spore.g[i]) < 1e-3 * gs + 1e-6,
          ("%s: gradient %d differs by %g (scale %g)"):format(k, i, maxdiff(g, res.spore.g[i]), gs))
      end
    end
  end)

  it("O2: the bf16 forward agrees up to summation order, and differs from float32 by bf16 rounding", function()
    local net = resnet()
    net:eval()
    local xs = x:to(net:device())
    local ref = net(xs):clone()
    amp.auto_mixed_precision(net, "O2")
    local out = each_kernel(function() return net(xs):clone() end)
    amp.auto_mixed_precision(net, "O0")
    local s = amax(ref)
    for k, y in pairs(out) do
      local d = maxdiff(y, ref)
      assert.is_true(d > 0 and d < 0.03 * s + 1e-3, ("%s: |bf16 - f32| = %g (scale %g)"):format(k, d, s))
      -- 18 layers deep, an f32 difference in the last bit flips an activation's bf16 rounding
      -- (2^-8 relative) downstream: the kernels agree to bf16 resolution, not f32's
      assert.is_true(maxdiff(y, out.spore) < 0.02 * s, ("%s vs spore: %g (scale %g)"):format(k, maxdiff(y, out.spore), s))
    end
    if out.onednn then assert.is_true(maxdiff(out.onednn, out.spore) > 0, "onednn ran oneDNN's bf16 kernels") end
  end)
end)

-- Channels-last activations (spore.nn.chain): under oneDNN on the CPU an eval chain keeps
-- its activations NHWC between fused convolutions, pools and blocks; nothing outside that
-- set sees them, and a backward after such a forward gets NCHW copies where it needs them.
describe("channels-last activations in chains", function()
  local x
  before_each(function()
    spore.manual_seed(11)
    x = spore.randn({ 2, 3, 33, 31 })
  end)
  -- (sim runs the cpu's kernels, oneDNN's too)
  local function cl_expected(net) return have.onednn and (net:device() == "cpu" or net:device() == "sim") end

  it("ResNet18 and ResNet50 in eval: body activations NHWC under oneDNN, the answer as spore's kernels give it", function()
    for _, make in ipairs({ resnet, function()
      spore.manual_seed(6)
      return H.perturb_batchnorm(spore.models.resnet50 { class_num = 7 })
    end }) do
      local net = make()
      net:eval()
      local xs = x:to(net:device())
      local layout = {}
      local out = each_kernel(function(k)
        local y = net(xs):clone()
        layout[k] = { net.relu.output:is_channels_last(), net.maxpool.output:is_channels_last(),
                      net.layer1.output:is_channels_last(), net.layer4.output:is_channels_last(),
                      net.layer2:_list()[1].output:is_channels_last(), y:is_contiguous() }
        return y
      end)
      assert.same({ false, false, false, false, false, true }, layout.spore)
      if have.onednn then
        local cl = cl_expected(net)
        assert.same({ cl, cl, cl, cl, cl, true }, layout.onednn)
        assert.same(layout.onednn, layout.auto)
        assert.is_true(maxdiff(out.auto, out.spore) < 1e-4 * amax(out.spore) + 1e-6)
        local s = amax(out.spore)
        assert.is_true(maxdiff(out.onednn, out.spore) < 1e-4 * s + 1e-6,
          ("onednn vs spore: %g (scale %g)"):format(maxdiff(out.onednn, out.spore), s))
      end
    end
  end)

  it("a block or a layer called directly returns NCHW; a custom module never sees NHWC", function()
    if not have.onednn then return end
    local net = resnet()
    net:eval()
    local xs = spore.randn({ 2, 64, 9, 8 }):to(net:device())
    spore.config { conv_kernel = "onednn" }
    local ok, err = pcall(function()
      local y = net.layer1(xs)
      assert.is_true(y:is_contiguous())
      assert.is_true(net.layer1:_list()[1](xs):is_contiguous())
      -- a user's module after a fused conv -> BN -> ReLU run
      local Probe = nn.class("Probe")
      function Probe:forward(v) self.seen = v:is_contiguous(); return v end
      local probe = Probe()
      local seq = nn.SequentialCell({ nn.Conv2d(64, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), probe, nn.Conv2d(16, 8, 1),
        nn.BatchNorm2d(8) })
      seq:eval()
      local z = seq(xs)
      assert.is_true(probe.seen)
      assert.is_true(z:is_contiguous())
      -- a subclass of a stock pool is not assumed to read NHWC
      local seq2 = nn.SequentialCell({ nn.Conv2d(64, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2) })
      seq2:eval()
      seq2:to(net:device())
      seq2(xs)
      assert.equal(cl_expected(net), seq2:_list()[3].output:is_channels_last())
      assert.is_true(seq2.output:is_contiguous())
    end)
    spore.config { conv_kernel = c0.conv_kernel }
    assert(ok, err)
  end)

  it("a backward after an eval forward (input gradients, frozen statistics) agrees across kernels", function()
    local net = resnet()
    net:eval()
    local xs = x:to(net:device())
    local res = each_kernel(function()
      local r = grads(net, xs)
      -- and a second step (the chains now run unfused) gives the same
      local r2 = grads(net, xs)
      assert.is_true(maxdiff(r2.gx, r.gx) <= 1e-5 * amax(r.gx) + 1e-7)
      return r
    end)
    for k, r in pairs(res) do
      assert.is_true(maxdiff(r.y, res.spore.y) < 1e-4 * amax(res.spore.y) + 1e-6, k .. ": outputs")
      local gs = amax(res.spore.gx)
      -- the input's gradient comes back through every BatchNorm's backward in training mode
      -- (layer4's has 2 values a channel at this size) and every ReLU's mask, which a
      -- forward value within rounding of 0 flips: sums in another order differ by 2.5e-4 of
      -- the largest (oneDNN 2.6 on an AMD Zen 5; 2e-4 passed on the Intel machines before;
      -- the same nets in eval mode agree to 7e-7); a wrong one is O(1)
      assert.is_true(maxdiff(r.gx, res.spore.gx) < 1e-3 * gs + 1e-6,
        ("%s: input gradient %g (scale %g)"):format(k, maxdiff(r.gx, res.spore.gx), gs))
      for i, g in ipairs(r.g) do
        gs = amax(res.spore.g[i])
        assert.is_true(maxdiff(g, res.spore.g[i]) < 1e-3 * gs + 1e-6, ("%s: gradient %d"):format(k, i))
      end
    end
  end)

  it("eval, train, eval: the layouts, and every answer agrees across kernels", function()
    local res = each_kernel(function()
      local net = resnet() -- a fresh net each: the training forward moves BatchNorm's statistics
      local xs = x:to(net:device())
      net:eval()
      local a = net(xs):clone()
      net:train(true)
      local t = net(xs):clone()
      local tl = net.layer1.output:is_channels_last() or net.relu.output:is_channels_last()
      net:eval()
      local b = net(xs):clone()
      assert.is_true(maxdiff(a, b) > 0, "the training forward moved the statistics")
      return { a = a, b = b, t = t, tl = tl, dev = net:device() }
    end)
    for k, r in pairs(res) do
      -- training runs channels-last too where oneDNN runs it (NHWC BatchNorm, oneDNN's NHWC backward)
      assert.equal(k ~= "spore" and have.onednn and (r.dev == "cpu" or r.dev == "sim"), r.tl, k .. ": training layout")
      assert.is_true(maxdiff(r.t, res.spore.t) < 1e-4 * amax(res.spore.t) + 1e-6, k .. ": training outputs")
      assert.is_true(maxdiff(r.a, res.spore.a) < 1e-4 * amax(res.spore.a) + 1e-6, k .. ": first eval")
      assert.is_true(maxdiff(r.b, res.spore.b) < 1e-4 * amax(res.spore.b) + 1e-6, k .. ": eval after training")
    end
  end)

  -- conv_dnnl.c keeps an eval net's weights in oneDNN's layout while their bytes are unchanged
  -- (spec/engine: cl_weight_cache); each way a user changes them must show in the next answer
  it("an eval net's kept weights follow load_param_into_net, an optimizer step and in-place writes", function()
    if not have.onednn then return end
    spore.config { conv_kernel = "auto" }
    local net = resnet()
    net:eval()
    local xs = x:to(net:device())
    local y1 = net(xs):clone()
    net(xs)
    assert.equal(0, maxdiff(net(xs), y1), "the kept weights give the first answer's bits")
    -- a fresh net holding net's values now (its weights never seen before) answers as net must
    local function fresh()
      local f = resnet()
      f:eval()
      local d = {}
      for _, e in ipairs(net:parameters_and_names()) do d[e[1]] = e[2].data:clone() end
      spore.load_param_into_net(f, d)
      return f(xs):clone()
    end
    -- load_param_into_net with other values
    spore.manual_seed(99)
    local other = H.perturb_batchnorm(spore.models.resnet18 { class_num = 10 })
    local d = {}
    for _, e in ipairs(other:parameters_and_names()) do d[e[1]] = e[2].data end
    spore.load_param_into_net(net, d)
    local y2 = net(xs):clone()
    assert.is_true(maxdiff(y2, y1) > 0)
    assert.equal(0, maxdiff(y2, fresh()), "after load_param_into_net")
    net(xs)
    assert.equal(0, maxdiff(net(xs), y2), "kept again")
    -- an optimizer step (the flat state: every weight a view of one buffer)
    local opt = spore.optim.Momentum(net:trainable_params(), 0.1, 0.9)
    local loss = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
    net:train(true)
    net:zero_grad()
    loss:forward(net(xs), spore.tensor({ 1, 3 }, "int32"):to(net:device()))
    net:backward(xs, loss:backward(), false)
    opt:step()
    net:eval()
    local y3 = net(xs):clone()
    assert.is_true(maxdiff(y3, y2) > 0)
    assert.equal(0, maxdiff(y3, fresh()), "after an optimizer step")
    net(xs)
    -- an in-place write to one convolution's weight
    net.layer3:_list()[1].conv2.weight.data:mul_(-1)
    local y4 = net(xs):clone()
    assert.is_true(maxdiff(y4, y3) > 0)
    assert.equal(0, maxdiff(y4, fresh()), "after an in-place product on one weight")
  end)

  it("a ResNet50 training step (bottleneck blocks, NHWC end to end) is as close to spore's as oneDNN on NCHW is", function()
    if not have.onednn then return end
    -- batch statistics over 8 values per channel in layer4 amplify float32 summation order:
    -- oneDNN on NCHW tensors already differs from spore's kernels by ~2% in the input
    -- gradient here. The channels-last run must stay within twice that distance; a layout
    -- mistake is O(1).
    local function nofuse(m, v)
      for _, k in ipairs({ "_ins", "_inputs" }) do if rawget(m, k) then m[k].nofuse = v end end
      for _, e in ipairs(m._modules) do nofuse(e[2], v) end
    end
    local function run(kernel, nchw)
      spore.config { conv_kernel = kernel }
      spore.manual_seed(8)
      local net = H.perturb_batchnorm(spore.models.resnet50 { class_num = 5 })
      net:train(true)
      spore.manual_seed(4)
      local xs = spore.randn({ 4, 3, 64, 64 }):to(net:device())
      local gy = spore.randn({ 4, 5 }):to(net:device())
      nofuse(net, nchw or nil) -- no fusion: no channels-last either
      local y = net(xs)
      local cl = net.layer3.output:is_channels_last()
      local gx = net:backward(xs, gy):clone()
      local g = {}
      for _, p in ipairs(net:trainable_params()) do g[#g + 1] = net:grad_of(p):clone() end
      spore.config { conv_kernel = c0.conv_kernel }
      return { y = y:clone(), gx = gx, g = g, cl = cl }
    end
    local ok, err = pcall(function()
      local ref, nchw, auto = run("spore"), run("onednn", true), run("auto")
      assert.is_false(ref.cl); assert.is_false(nchw.cl); assert.is_true(auto.cl)
      -- relative distances: largest element difference over the largest element (outputs, input
      -- gradient); over all parameters, the summed absolute difference over the summed magnitude
      local function l1(t) local v = t:abs():sum(); return type(v) == "number" and v or v:item() end
      local function dist(a, b)
        local d = { y = maxdiff(a.y, b.y) / amax(b.y), gx = maxdiff(a.gx, b.gx) / amax(b.gx) }
        local num, den = 0, 0
        for i = 1, #b.g do num = num + l1(a.g[i] - b.g[i]); den = den + l1(b.g[i]) end
        d.g = num / den
        return d
      end
      local dn, dc = dist(nchw, ref), dist(auto, ref)
      print(("\n  channels-last from spore's: y %.2g, gx %.2g, params %.2g; oneDNN NCHW: %.2g, %.2g, %.2g"):format(
        dc.y, dc.gx, dc.g, dn.y, dn.gx, dn.g))
      for _, key in ipairs({ "y", "gx", "g" }) do
        assert.is_true(dc[key] <= 2 * dn[key] + 1e-5,
          ("%s: channels-last %g from spore's, oneDNN on NCHW %g"):format(key, dc[key], dn[key]))
      end
    end)
    spore.config { conv_kernel = c0.conv_kernel }
    assert(ok, err)
  end)

  it("O2 eval under oneDNN runs NHWC too", function()
    if not have.onednn then return end
    local net = resnet()
    net:eval()
    local xs = x:to(net:device())
    amp.auto_mixed_precision(net, "O2")
    local out = each_kernel(function(k)
      local y = net(xs):clone()
      if k == "onednn" then assert.equal(cl_expected(net), net.layer3.output:is_channels_last()) end
      return y
    end)
    amp.auto_mixed_precision(net, "O0")
    local s = amax(out.spore)
    assert.is_true(maxdiff(out.onednn, out.spore) < 0.02 * s, ("onednn vs spore: %g"):format(maxdiff(out.onednn, out.spore)))
  end)
end)
