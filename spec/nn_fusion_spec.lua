-- nn_fusion_spec.lua — eval-mode conv + BatchNorm (+ residual) (+ ReLU) fusion
-- (sp_conv2d_bn_forward, spore.nn.chain): the fused kernel against the three unfused ops on
-- every convolution path (per-image GEMM, whole-batch GEMM, Winograd, direct, groups);
-- networks in eval mode against their modules run one by one; a backward after a fused
-- forward against one after an unfused forward; the cases that must not fuse; bad arguments.
-- Training: BatchNorm (+ residual) (+ ReLU) forward and BatchNorm backward through a ReLU's
-- mask against the unfused kernels, bit for bit, and ResNet training steps against unfused ones.
local spore = require("spore")
local K = require("ffi.nn")
local chain = require("spore.nn.chain")
local H = spec_helper
local function maxdiff(a, b)
  assert.same(a:shape(), b:shape())
  return H.max_abs_diff(a:flatten():totable(), b:flatten():totable())
end

local function bn_params(c, seed)
  spore.manual_seed(seed)
  return spore.rand({ c }):mul(1.5):add(0.25), spore.randn({ c }):mul(0.3), -- gamma, beta
    spore.randn({ c }):mul(0.2), spore.rand({ c }):add(0.3)                 -- moving mean, var
end

-- conv, then BatchNorm eval, then (+ residual, ReLU) with the unfused kernels
local function unfused(x, w, b, g, be, mm, mv, eps, res, relu, stride, pad)
  local s, ws = x:shape(), w:shape()
  local ho = math.floor((s[3] + pad[1] + pad[2] - ws[3]) / stride) + 1
  local wo = math.floor((s[4] + pad[3] + pad[4] - ws[4]) / stride) + 1
  local groups = s[2] / ws[2]
  local c = spore.empty({ s[1], ws[1], ho, wo })
  K.conv2d_forward(c, x, w, b, { stride, stride }, pad, { 1, 1 }, groups)
  local y = spore.empty(c:shape())
  K.batchnorm_forward(y, spore.empty({ ws[1] }), spore.empty({ ws[1] }), c, g, be, mm, mv, false, false, 0.9, eps)
  if res then
    local z = spore.empty(y:shape()); K.add(z, y, res, relu); return z
  elseif relu then
    local z = spore.empty(y:shape()); K.relu_forward(z, y); return z
  end
  return y
end

describe("sp_conv2d_bn_forward against conv + BatchNorm + add + ReLU", function()
  local cases = {
    { "1x1 per image (N=1)", n = 1, cin = 16, cout = 24, k = 1, h = 40, stride = 1, pad = { 0, 0, 0, 0 } },
    { "1x1 whole batch (N=3, small map)", n = 3, cin = 16, cout = 8, k = 1, h = 7, stride = 1, pad = { 0, 0, 0, 0 } },
    { "3x3 Winograd", n = 2, cin = 8, cout = 16, k = 3, h = 20, stride = 1, pad = { 1, 1, 1, 1 } },
    { "3x3 stride 2 im2col", n = 2, cin = 8, cout = 12, k = 3, h = 17, stride = 2, pad = { 0, 1, 0, 1 } },
    { "5x5 direct (LeNet conv1)", n = 3, cin = 1, cout = 6, k = 5, h = 32, stride = 1, pad = { 0, 0, 0, 0 } },
    { "groups 2 with bias", n = 2, cin = 8, cout = 6, k = 3, h = 9, stride = 1, pad = { 1, 1, 1, 1 }, groups = 2, bias = true },
  }
  for _, c in ipairs(cases) do
    for _, v in ipairs({ { false, false }, { false, true }, { true, false }, { true, true } }) do
      local res_on, relu = v[1], v[2]
      it(("%s, residual %s, relu %s"):format(c[1], tostring(res_on), tostring(relu)), function()
        spore.manual_seed(11)
        local g = c.groups or 1
        local x = spore.randn({ c.n, c.cin, c.h, c.h })
        local w = spore.randn({ c.cout, c.cin / g, c.k, c.k }):mul(0.2)
        local b = c.bias and spore.randn({ c.cout }) or nil
        local gm, be, mm, mv = bn_params(c.cout, 5)
        local want = unfused(x, w, b, gm, be, mm, mv, 1e-4, nil, false, c.stride, c.pad)
        local res = res_on and spore.randn(want:shape()) or nil
        want = unfused(x, w, b, gm, be, mm, mv, 1e-4, res, relu, c.stride, c.pad)
        local got = spore.empty(want:shape())
        K.conv2d_bn_forward(got, x, w, b, gm, be, mm, mv, 1e-4, res, relu, { c.stride, c.stride }, c.pad, { 1, 1 }, g)
        local scale = 1
        for _, t in ipairs(want:flatten():totable()) do scale = math.max(scale, math.abs(t)) end
        assert.is_true(maxdiff(got, want) <= 1e-6 * scale, "max diff " .. maxdiff(got, want))
        if relu then
          local neg = 0
          for _, t in ipairs(got:flatten():totable()) do if t < 0 then neg = neg + 1 end end
          assert.equal(0, neg)
        end
      end)
    end
  end

  it("bfloat16 (amp_level O2): the bf16 convolution, then the float32 epilogue, equals the unfused ops", function()
    spore.manual_seed(13)
    local x = spore.randn({ 2, 16, 12, 12 })
    local w = spore.randn({ 24, 16, 3, 3 }):mul(0.2)
    local gm, be, mm, mv = bn_params(24, 6)
    local pad = { 1, 1, 1, 1 }
    local c = spore.empty({ 2, 24, 12, 12 })
    K.conv2d_forward_bf16(c, x, w, nil, { 1, 1 }, pad, { 1, 1 }, 1)
    local y = spore.empty(c:shape())
    K.batchnorm_forward(y, spore.empty({ 24 }), spore.empty({ 24 }), c, gm, be, mm, mv, false, false, 0.9, 1e-4)
    local res = spore.randn(c:shape())
    local want = spore.empty(c:shape())
    K.add(want, y, res, true)
    local got = spore.empty(c:shape())
    K.conv2d_bn_forward_bf16(got, x, w, nil, gm, be, mm, mv, 1e-4, res, true, { 1, 1 }, pad, { 1, 1 }, 1)
    assert.equal(0, maxdiff(got, want))
    -- and it is the bf16 convolution: float32's differs
    local f32 = spore.empty(c:shape())
    K.conv2d_bn_forward(f32, x, w, nil, gm, be, mm, mv, 1e-4, res, true, { 1, 1 }, pad, { 1, 1 }, 1)
    assert.is_true(maxdiff(f32, want) > 1e-4)
  end)

  it("refuses bad arguments with one line naming the tensor", function()
    local x, w = spore.randn({ 1, 4, 8, 8 }), spore.randn({ 6, 4, 1, 1 })
    local out = spore.empty({ 1, 6, 8, 8 })
    local gm, be, mm, mv = bn_params(6, 1)
    local p = { 0, 0, 0, 0 }
    local ok, err = pcall(K.conv2d_bn_forward, out, x, w, nil, spore.ones({ 5 }), be, mm, mv, 1e-4, nil, true, { 1, 1 }, p, { 1, 1 }, 1)
    assert.is_false(ok); assert.matches("conv2d_bn_forward", err); assert.matches("gamma", err)
    ok, err = pcall(K.conv2d_bn_forward, out, x, w, nil, gm, be, mm, spore.ones({ 7 }), 1e-4, nil, true, { 1, 1 }, p, { 1, 1 }, 1)
    assert.is_false(ok); assert.matches("moving_variance", err)
    ok, err = pcall(K.conv2d_bn_forward, out, x, w, nil, gm, be, mm, mv, 1e-4, spore.randn({ 1, 6, 4, 8 }), true, { 1, 1 }, p, { 1, 1 }, 1)
    assert.is_false(ok); assert.matches("residual", err)
    ok, err = pcall(K.conv2d_bn_forward, out, x, w, nil, gm, be, mm, mv, 0, nil, true, { 1, 1 }, p, { 1, 1 }, 1)
    assert.is_false(ok); assert.matches("eps", err)
    local sq = spore.randn({ 1, 6, 8, 8 })
    ok, err = pcall(K.conv2d_bn_forward, sq, sq, spore.randn({ 6, 6, 1, 1 }), nil, gm, be, mm, mv, 1e-4, nil, true, { 1, 1 }, p, { 1, 1 }, 1)
    assert.is_false(ok); assert.matches("must not be the input", err)
  end)
end)

local perturb = H.perturb_batchnorm
local function set_nofuse(m, v)
  for _, k in ipairs({ "_ins", "_inputs" }) do if rawget(m, k) then m[k].nofuse = v end end
  for _, e in ipairs(m._modules) do set_nofuse(e[2], v) end
end
local function count_fused(m)
  local n = 0
  for _, k in ipairs({ "_ins", "_inputs" }) do
    local t = rawget(m, k)
    if t then for _, v in ipairs(t) do if v == chain.FUSED then n = n + 1 end end end
  end
  for _, e in ipairs(m._modules) do n = n + count_fused(e[2]) end
  return n
end

describe("eval-mode networks fuse conv + BN (+ join) (+ ReLU)", function()
  -- on spore's kernels, whose fused and unfused sums agree to 1e-5 (the default "auto" runs
  -- the fused eval chains on oneDNN; conv_kernel_spec compares it with these)
  local k0
  before_each(function() k0 = spore.config().conv_kernel; spore.config { conv_kernel = "spore" } end)
  after_each(function() spore.config { conv_kernel = k0 } end)
  for _, name in ipairs({ "resnet18", "resnet50" }) do
    it(name .. ": fused forward equals the unfused one, and a backward after it too", function()
      spore.manual_seed(3)
      local net = spore.models[name] { class_num = 10 }
      perturb(net)
      net:eval()
      local x = spore.randn({ 2, 3, 48, 48 }):to(net:device())
      local fused = net(x):clone()
      assert.is_true(count_fused(net) > 20, "fusion ran")
      set_nofuse(net, true)
      local plain = net(x):clone()
      assert.equal(0, count_fused(net))
      assert.is_true(maxdiff(fused, plain) <= 1e-5, "max diff " .. maxdiff(fused, plain))

      -- a backward through the fused runs (eval mode, e.g. frozen BatchNorm statistics)
      local function grads(nofuse)
        set_nofuse(net, nofuse)
        net:zero_grad()
        local y = net(x)
        local gx = net:backward(x, spore.ones(y:shape()):to(y:device())):clone()
        local gs = {}
        for _, p in ipairs(net:trainable_params()) do gs[#gs + 1] = net:grad_of(p):clone() end
        return gx, gs
      end
      local gx1, g1 = grads(nil)
      assert.is_true(net._ins.nofuse, "a backward through fused runs turns fusion off for that owner")
      local gx2, g2 = grads(true)
      assert.is_true(maxdiff(gx1, gx2) <= 1e-5)
      for i = 1, #g1 do assert.is_true(maxdiff(g1[i], g2[i]) <= 1e-4, "grad " .. i) end
    end)
  end

  it("a Sequential conv, BN, ReLU equals the modules run one by one", function()
    spore.manual_seed(9)
    local conv = spore.nn.Conv2d(3, 8, 3, { pad_mode = "same", has_bias = true })
    local bn = spore.nn.BatchNorm2d(8)
    local seq = spore.nn.SequentialCell({ conv, bn, spore.nn.ReLU() })
    perturb(seq)
    seq:eval()
    local x = spore.randn({ 2, 3, 10, 10 }):to(seq:device())
    local got = seq(x):clone()
    assert.equal(2, count_fused(seq))
    local want = spore.nn.ReLU():forward(bn:forward(conv:forward(x)))
    assert.is_true(maxdiff(got, want) <= 1e-6)
  end)

  it("SPORE_NO_FUSE: 1 turns fusion off, 0 leaves it on, anything else is refused by name", function()
    local prog = [[luajit -e 'package.path="lua/?.lua;lua/?/init.lua;bindings/?.lua;"..package.path
      local spore = require("spore"); local chain = require("spore.nn.chain")
      local seq = spore.nn.SequentialCell({ spore.nn.Conv2d(2, 4, 1), spore.nn.BatchNorm2d(4) }):eval()
      seq(spore.randn({ 1, 2, 3, 3 }):to(seq:device())); io.write(tostring(seq._inputs[2] == chain.FUSED))' 2>&1]]
    assert.equal("false", (H.run("SPORE_NO_FUSE=1 " .. prog)))
    assert.equal("true", (H.run("SPORE_NO_FUSE=0 " .. prog)))
    local out, rc = H.run("SPORE_NO_FUSE=yes " .. prog)
    assert.is_true(rc ~= 0)
    assert.matches("SPORE_NO_FUSE must be 0 or 1, got 'yes'", out, 1, true)
  end)

  it("does not fuse in training mode, with batch statistics, or past a replaced forward", function()
    spore.manual_seed(9)
    local bn = spore.nn.BatchNorm2d(4)
    local seq = spore.nn.SequentialCell({ spore.nn.Conv2d(2, 4, 1), bn })
    local x = spore.randn({ 2, 2, 5, 5 }):to(seq:device())
    seq:train(); seq(x); assert.equal(0, count_fused(seq))
    seq:eval(); seq(x); assert.equal(1, count_fused(seq))
    bn.use_batch_statistics = true; seq(x); assert.equal(0, count_fused(seq))
    bn.use_batch_statistics = nil
    local called = 0
    local orig = bn.forward
    bn.forward = function(self, y) called = called + 1; return orig(self, y) end
    seq(x)
    assert.equal(0, count_fused(seq)); assert.equal(1, called)
  end)
end)

describe("training fusion: BatchNorm (+ residual) (+ ReLU) and its backward through the ReLU", function()
  -- bit-for-bit comparisons on spore's kernels (the default "auto" runs training's
  -- convolutions channels-last on oneDNN; conv_kernel_spec compares it with these)
  local k0
  before_each(function() k0 = spore.config().conv_kernel; spore.config { conv_kernel = "spore" } end)
  after_each(function() spore.config { conv_kernel = k0 } end)
  local function bits_equal(a, b)
    local A, B = a:flatten():totable(), b:flatten():totable()
    assert.equal(#A, #B)
    for i = 1, #A do if A[i] ~= B[i] then return false, i, A[i], B[i] end end
    return true
  end
  for _, training in ipairs({ true, false }) do
    for _, v in ipairs({ { false, true }, { true, true }, { true, false } }) do
      local res_on, relu = v[1], v[2]
      it(("forward %s, residual %s, relu %s: the unfused ops' bits"):format(training and "training" or "eval",
        tostring(res_on), tostring(relu)), function()
        spore.manual_seed(17)
        local x = spore.randn({ 3, 5, 7, 9 })
        local res = res_on and spore.randn(x:shape()) or nil
        local function run(fused)
          local g, be, mm, mv = bn_params(5, 4)
          local out, sm, si = spore.empty(x:shape()), spore.empty({ 5 }), spore.empty({ 5 })
          if fused then
            K.batchnorm_act_forward(out, sm, si, x, g, be, mm, mv, training, training, 0.9, 1e-5, res, relu)
            return out, mm, mv
          end
          K.batchnorm_forward(out, sm, si, x, g, be, mm, mv, training, training, 0.9, 1e-5)
          local z = spore.empty(x:shape())
          if res then K.add(z, out, res, relu) elseif relu then K.relu_forward(z, out) else z = out end
          return z, mm, mv
        end
        local a, amm, amv = run(true)
        local b, bmm, bmv = run(false)
        assert.is_true(bits_equal(a, b))
        assert.is_true(bits_equal(amm, bmm)); assert.is_true(bits_equal(amv, bmv))
      end)
    end
    it(("backward through the ReLU (%s): the unfused ops' bits"):format(training and "training" or "eval"), function()
      spore.manual_seed(19)
      local x = spore.randn({ 4, 6, 5, 5 })
      local g, be, mm, mv = bn_params(6, 8)
      local y, sm, si = spore.empty(x:shape()), spore.empty({ 6 }), spore.empty({ 6 })
      K.batchnorm_act_forward(y, sm, si, x, g, be, mm, mv, training, false, 0.9, 1e-5, nil, true)
      local gout = spore.randn(x:shape())
      local gx1, gg1, gb1 = spore.empty(x:shape()), spore.randn({ 6 }), spore.randn({ 6 })
      local gg2, gb2 = gg1:clone(), gb1:clone()
      K.batchnorm_relu_backward(gx1, gg1, gb1, gout, y, x, g, sm, si, training)
      local gr, gx2 = spore.empty(x:shape()), spore.empty(x:shape())
      K.relu_backward(gr, gout, y)
      K.batchnorm_backward(gx2, gg2, gb2, gr, x, g, sm, si, training)
      assert.is_true(bits_equal(gx1, gx2)); assert.is_true(bits_equal(gg1, gg2)); assert.is_true(bits_equal(gb1, gb2))
      local zeros = 0
      for _, t in ipairs(y:flatten():totable()) do if t == 0 then zeros = zeros + 1 end end
      assert.is_true(zeros > 10, "the ReLU masked something")
    end)
  end

  it("refuses a residual or mask of the wrong shape", function()
    local x = spore.randn({ 2, 3, 4, 4 })
    local g, be, mm, mv = bn_params(3, 1)
    local out, sm, si = spore.empty(x:shape()), spore.empty({ 3 }), spore.empty({ 3 })
    local ok, err = pcall(K.batchnorm_act_forward, out, sm, si, x, g, be, mm, mv, true, false, 0.9, 1e-5,
      spore.randn({ 2, 3, 4, 5 }), true)
    assert.is_false(ok); assert.matches("batchnorm_act_forward", err); assert.matches("residual", err)
    ok, err = pcall(K.batchnorm_relu_backward, spore.empty(x:shape()), nil, nil, spore.randn(x:shape()),
      spore.randn({ 2, 3, 4 }), x, g, sm, si, true)
    assert.is_false(ok); assert.matches("batchnorm_relu_backward", err); assert.matches("'?y'?", err)
  end)

  for _, name in ipairs({ "resnet18", "resnet50" }) do
    it(name .. ": two Momentum steps in training mode equal the unfused ones bit for bit", function()
      local function steps(nofuse)
        spore.manual_seed(23)
        local net = spore.models[name] { class_num = 10 }
        net:train()
        local opt = spore.optim.Momentum(net:trainable_params(), 0.05, 0.9)
        local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
        local x = spore.randn({ 4, 3, 32, 32 }):to(net:device())
        local y = spore.tensor({ 1, 7, 3, 0 }, "int32"):to(net:device())
        local ls = {}
        local j0 = chain.masked_joins
        for s = 1, 2 do
          set_nofuse(net, nofuse)
          net:zero_grad()
          ls[s] = loss:forward(net(x), y)
          net:backward(x, loss:backward(), false)
          opt:step()
        end
        local marks = 0
        local function count(m)
          for _, k in ipairs({ "_ins", "_inputs" }) do
            local t = rawget(m, k)
            if t then for _, v in ipairs(t) do if v == chain.BNRELU then marks = marks + 1 end end end
          end
          for _, e in ipairs(m._modules) do count(e[2]) end
        end
        count(net)
        return ls, net, marks, chain.masked_joins - j0
      end
      local l1, n1, marks, joins = steps(nil)
      local l2, n2, none, nojoins = steps(true)
      assert.is_true(marks > 5, "the fused path ran")
      assert.equal(0, none)
      -- the ReLU mask of a block's output applied in the next block's join gradient: at every
      -- block boundary, inside the layers and across them (2 x 7 for resnet18, 2 x 15 for resnet50)
      assert.equal(name == "resnet18" and 14 or 30, joins)
      assert.equal(0, nojoins)
      assert.same(l2, l1)
      local p1, p2 = n1:parameters(), n2:parameters()
      for i = 1, #p1 do
        local ok, at = bits_equal(p1[i].data, p2[i].data)
        assert.is_true(ok, p1[i].name .. " differs at " .. tostring(at))
      end
    end)
  end

  it("resnet50 on channels-last (auto): the block-to-block ReLU masks change no bit, and an instance's own backward opts out", function()
    local Block = require("spore.models.residual_block")
    local function steps(masks, override)
      spore.manual_seed(29)
      local net = spore.models.resnet50 { class_num = 10 }
      net:train()
      if override then -- the second block of layer2 with a backward of its own (the same math)
        local b = net.layer2["1"]
        b.backward = function(self, x, g, need) return Block.backward(self, x, g, need) end
      end
      local opt = spore.optim.Momentum(net:trainable_params(), 0.05, 0.9)
      local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
      local x = spore.randn({ 2, 3, 32, 32 })
      local y = spore.tensor({ 1, 7 }, "int32")
      local saved = chain.MASK
      if not masks then chain.MASK = {} end
      local j0 = chain.masked_joins
      local ok, err = pcall(function()
        for _ = 1, 2 do
          net:zero_grad()
          loss:forward(net(x), y)
          net:backward(x, loss:backward(), false)
          opt:step()
        end
      end)
      chain.MASK = saved
      assert(ok, err)
      return net, chain.masked_joins - j0
    end
    local k0 = spore.config().conv_kernel
    spore.config { conv_kernel = "auto" }
    local n1, j1 = steps(true)
    local n2, j2 = steps(false)
    local n3, j3 = steps(true, true)
    spore.config { conv_kernel = k0 }
    assert.equal(30, j1); assert.equal(0, j2)
    assert.equal(26, j3, "no mask into or out of the overridden block")
    for _, n in ipairs({ n1, n3 }) do
      local p1, p2 = n:parameters(), n2:parameters()
      for i = 1, #p1 do
        local ok, at = bits_equal(p1[i].data, p2[i].data)
        assert.is_true(ok, p1[i].name .. " differs at " .. tostring(at))
      end
    end
  end)
end)
