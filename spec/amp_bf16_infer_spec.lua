-- amp_bf16_infer_spec.lua — O2 inference (spore.inference_mode; Model:eval and Model:predict run
-- in it): the activations between fused bfloat16 convolutions are bfloat16, as MindSpore's O2
-- passes float16 between its cells (spore.nn.chain). The kernel's numbers are checked in
-- spec/engine/test_channels_last.c (cl_bf16_activations); here: which tensors are bf16, a
-- residual block against the same fused kernels run by hand with each bf16 activation rounded
-- explicitly, the net against O2 with float32 activations, and the mode's edges (a backward
-- after it is refused by name, float32 nets do not change, the flag is restored on error).
local H = require("spec.helper")
local spore = require("spore")
local amp = spore.train.amp
local K = require("ffi.nn")

local maxdiff = H.max_abs_diff
local function maxabs(a) return H.max_abs_diff(a, a * 0) end
local function bf16(t) return t:clone("bfloat16"):clone("float32") end -- rounded, nearest even
local function onednn()
  for _, n in ipairs(spore.config().conv_kernels) do if n == "onednn" then return true end end
  return false
end
local function same_bits(a, b) return a:dtype() == b:dtype() and maxdiff(a, b) == 0 end

-- a ResNet (resnet18 unless kind says, class_num 10) in eval mode at level lv, seed 7: one
-- per kind and level, shared by the tests (none changes weights); fresh = true builds another
-- with the same weights
local cached = {}
local function small_resnet(lv, fresh, kind)
  kind = kind or "resnet18"
  local key = kind .. lv
  if cached[key] and not fresh then return cached[key] end
  spore.manual_seed(7)
  local net = spore.models[kind] { class_num = 10 }
  net:eval()
  amp.auto_mixed_precision(net, lv)
  if not fresh then cached[key] = net end
  return net
end

describe("O2 inference: bfloat16 activations between fused convolutions", function()
  if not onednn() then
    it("needs oneDNN's channels-last convolutions (this build has none): float32 activations", function()
      local net = small_resnet("O2")
      local x = spore.randn({ 1, 3, 32, 32 }):to(net:device())
      assert.is_true(same_bits(spore.inference_mode(net, x):clone(), net(x):clone()))
    end)
    return
  end

  it("writes the stem's, the pool's and the blocks' activations in bf16, keeps the last block and the logits float32", function()
    local net = small_resnet("O2", false, "resnet50")
    local x = spore.randn({ 2, 3, 64, 64 }):to(net:device())
    local y = spore.inference_mode(net, x)
    assert.equal("float32", y:dtype())
    assert.same({ 2, 10 }, y:shape())
    local kinds = {}
    for _, e in ipairs(net:cells_and_names()) do
      local o = rawget(e[2], "output")
      if o and e[1]:match("^layer%d%.%d+$") then kinds[e[1]] = o:dtype() end
    end
    assert.equal("bfloat16", kinds["layer1.0"]); assert.equal("bfloat16", kinds["layer3.5"])
    assert.equal("bfloat16", kinds["layer4.1"]); assert.equal("float32", kinds["layer4.2"])
    assert.equal("bfloat16", rawget(net.layer2:_list()[1]._relus[1], "output"):dtype())
    -- the stem and the max pool (the max of bf16 values) feed layer1's convolutions
    assert.equal("bfloat16", rawget(net.relu, "output"):dtype())
    assert.equal("bfloat16", rawget(net.maxpool, "output"):dtype())
    -- a max pool read by anything else gets float32: a stem whose pool feeds a flatten
    spore.manual_seed(5)
    local nn = spore.nn
    local seq = nn.SequentialCell({ nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
      nn.MaxPool2d { kernel_size = 2, stride = 2 }, nn.Flatten() }):to(net:device())
    seq:eval()
    amp.auto_mixed_precision(seq, "O2")
    local xs = spore.randn({ 2, 3, 16, 16 }):to(net:device())
    local ys = spore.inference_mode(seq, xs):clone()
    assert.equal("float32", rawget(seq:_list()[4], "output"):dtype())
    assert.is_true(same_bits(ys, seq(xs):clone()))
  end)

  it("a bottleneck block equals its fused kernels run by hand with each bf16 activation rounded", function()
    spore.manual_seed(3)
    local B = spore.models.ResidualBlock(64, 256, 2, true)
    B:eval()
    amp.auto_mixed_precision(B, "O2")
    H.perturb_batchnorm(B) -- non-trivial BatchNorm statistics
    local x = bf16(spore.randn({ 2, 64, 16, 16 })):to(B:device())
    local got = spore.inference_mode(B, x):clone()
    assert.equal("bfloat16", rawget(B._relus[1], "output"):dtype())
    assert.equal("bfloat16", rawget(B._relus[2], "output"):dtype())
    assert.equal("bfloat16", rawget(B.down_sample_layer:_list()[2], "output"):dtype())
    -- by hand: conv -> BN (-> + residual) (-> ReLU) in the bf16 fused kernel on float32 NCHW
    -- operands, each output a later layer reads rounded to bf16 as the chain stores it
    local function fused(conv, bn, inp, res, relu)
      local s = inp:shape()
      local ho, wo, p = conv:geometry(s[3], s[4])
      local out = spore.empty({ s[1], conv.out_channels, ho, wo }):to(inp:device())
      K.conv2d_bn_forward_bf16(out, inp, conv.weight.data, nil, bn.gamma.data, bn.beta.data, bn.moving_mean.data,
        bn.moving_variance.data, bn.eps, res, relu, conv.stride, p, conv.dilation, conv.group)
      return out
    end
    local y1 = bf16(fused(B.conv1, B.bn1, x, nil, true))
    local y2 = bf16(fused(B.conv2, B.bn2, y1, nil, true))
    local ds = B.down_sample_layer:_list()
    local id = bf16(fused(ds[1], ds[2], x, nil, false))
    local want = fused(B.conv3, B.bn3, y2, id, true)
    -- float32 activations (the same block outside inference_mode): the rounding is what differs
    local plain = B(x):clone()
    local d, dp, big = maxdiff(got, want), maxdiff(plain, want), maxabs(want)
    assert.is_true(d <= 2e-2 * big, ("inference vs by hand: %g of %g"):format(d, big))
    assert.is_true(dp > 0, "the float32-activation run differs from the rounded one")
    -- a bf16 ulp flip now and then (another kernel, another summation order) moves a few outputs
    local n, close = 0, 0
    local g, w = got:totable(), want:totable()
    for a = 1, #g do for b = 1, #g[a] do for c = 1, #g[a][b] do for e = 1, #g[a][b][c] do
      n = n + 1
      if math.abs(g[a][b][c][e] - w[a][b][c][e]) <= 1e-5 * big then close = close + 1 end
    end end end end
    assert.is_true(close >= 0.95 * n, ("%d of %d outputs within 1e-5 of the hand-run"):format(close, n))
  end)

  it("stays close to O2 with float32 activations and to float32 itself", function()
    local n2, n0 = small_resnet("O2"), small_resnet("O0")
    local x = spore.randn({ 2, 3, 64, 64 }):to(n2:device())
    local yi, yp, y0 = spore.inference_mode(n2, x):clone(), n2(x):clone(), n0(x):clone()
    local big = maxabs(y0)
    assert.is_true(maxdiff(yi, yp) > 0, "bf16 activations change the numbers")
    assert.is_true(maxdiff(yi, yp) <= 0.05 * big, ("vs O2 float32 activations: %g of %g"):format(maxdiff(yi, yp), big))
    assert.is_true(maxdiff(yi, y0) <= 0.08 * big, ("vs float32: %g of %g"):format(maxdiff(yi, y0), big))
  end)

  it("Model:predict runs in it; float32 nets are unchanged by it", function()
    local n2 = small_resnet("O2")
    local x = spore.randn({ 2, 3, 64, 64 }):to(n2:device())
    local m = spore.Model(n2)
    n2(x); spore.inference_mode(n2, x) -- a float32 net's first forward may differ in its last bits (first use)
    assert.is_true(same_bits(m:predict(x):clone(), spore.inference_mode(n2, x):clone()))
    local n0 = small_resnet("O0")
    n0(x); spore.inference_mode(n0, x)
    assert.is_true(same_bits(spore.inference_mode(n0, x):clone(), n0(x):clone()))
  end)

  it("refuses a backward after it by name; a forward outside it trains as before", function()
    local n2 = small_resnet("O2")
    local x = spore.randn({ 2, 3, 32, 32 }):to(n2:device())
    local y = spore.inference_mode(n2, x)
    assert.has_error(function() n2:backward(x, spore.ones(y:shape()):to(y:device())) end,
      "spore: backward after a forward run under spore.inference_mode (Model:eval/predict run in it): "
      .. "it keeps nothing for gradients (O2's activations may be bfloat16); run the forward outside it")
    -- outside it: the float32-activation forward (buffers back to float32) and its gradients,
    -- the same bits as a net that never ran in it
    local fresh = small_resnet("O2", true)
    local g = spore.ones({ 2, 10 }):to(x:device())
    local ya, yb = n2(x):clone(), fresh(x):clone()
    assert.is_true(same_bits(ya, yb))
    n2:backward(x, g); fresh:backward(x, g)
    local pa, pb = n2:parameters_and_names(), fresh:parameters_and_names()
    local checked = 0
    for i, e in ipairs(pa) do
      local ga, gb = n2:grad_of(e[2]), fresh:grad_of(pb[i][2])
      if ga then assert.is_true(same_bits(ga, gb), e[1]); checked = checked + 1 end
    end
    assert.is_true(checked > 50)
  end)

  it("restores the mode after an error and refuses a non-callable by name", function()
    local chain = require("spore.nn.chain")
    assert.has_error(function() spore.inference_mode(function() error("boom", 0) end) end, "boom")
    assert.is_false(chain.inference)
    assert.has_error(function() spore.inference_mode(42) end,
      "spore.inference_mode: expected a function (or a module), got number")
    local a, b = spore.inference_mode(function(p, q) return p + q, chain.inference end, 2, 3)
    assert.equal(5, a); assert.is_true(b)
  end)
end)
