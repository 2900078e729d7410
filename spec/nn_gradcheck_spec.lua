-- nn_gradcheck_spec.lua — every module's backward against central finite differences
-- (torch/nn's Jacobian check, done on a random projection L = sum(y * r)).
--
-- Tolerances: the engine computes in float32, so the check perturbs float32 inputs by
-- eps = 1e-2 and evaluates L in double from the float32 outputs. L sums at most ~1e3
-- terms of size ~1, each rounded to ~6e-8 relative, so |error(L)| < ~1e-5 and the
-- finite difference carries < ~5e-4 of rounding noise (1e-5 / 2eps); the truncation
-- error of a central difference is eps^2/6 * |L'''| ~ 2e-5 for the smooth modules (BN,
-- softmax). We accept |fd - analytic| <= 5e-3 + 1e-2 * |analytic|: ten times the noise,
-- yet far below any real gradient bug (a missing term is O(1)). Inputs of ReLU and max
-- pooling are kept further than eps from their kinks and ties. Composite modules with
-- internal ReLUs (Sequential, ResNet blocks) use eps = 2e-3 (noise < ~2.5e-3, still
-- under ATOL) and skip coordinates whose perturbation crosses a kink (see `kinks`).
local spore = require("spore")
local nn = spore.nn
local resnet = require("spore.models.resnet")

local EPS, ATOL, RTOL = 1e-2, 5e-3, 1e-2

-- y may live on a device (SPORE_DEVICE=sim): read it through an explicit copy
local function proj(y, r)
  local yp, rp, s = y:to("cpu"):contiguous():ptr(), r:to("cpu"):contiguous():ptr(), 0
  for i = 0, y:numel() - 1 do s = s + yp[i] * rp[i] end
  return s
end

local function sample(n, k)
  if n <= k then local r = {}; for i = 0, n - 1 do r[#r + 1] = i end; return r end
  local r, seen = {}, {}
  while #r < k do
    local i = math.random(0, n - 1)
    if not seen[i] then seen[i] = true; r[#r + 1] = i end
  end
  return r
end

-- fwd(x) → output; bwd(x, r) → grad_input. Checks d/dx and d/dparams.
local function jacobian(mod, x, opts)
  opts = opts or {}
  local seed = 1234
  -- the input goes where the module's parameters are (the default device)
  if mod.device then x = x:to(mod:device()) end
  local function fwd()
    if opts.reseed then spore.manual_seed(seed) end
    return mod:forward(x)
  end
  local y = fwd()
  local r = spore.randn(y:shape()):to(y:device())
  mod:zero_grad()
  y = fwd()
  local gx = mod:backward(x, r)
  local worst = 0
  local function cmp(what, i, an, fd)
    local err = math.abs(fd - an)
    worst = math.max(worst, err / (ATOL + RTOL * math.abs(an)))
    assert(err <= ATOL + RTOL * math.abs(an),
      ("%s[%d]: analytic %.6g vs finite difference %.6g"):format(what, i, an, fd))
  end
  local function probe(t, an_t, what)
    -- element access through get/set on a flat view: works on any device
    local flat = t:view({ t:numel() })
    local p = setmetatable({}, { __index = function(_, i) return flat:get({ i + 1 }) end,
      __newindex = function(_, i, v) flat:set({ i + 1 }, v) end })
    local an = {}
    for i, v in ipairs(an_t:flat()) do an[i - 1] = v end -- the buffer is overwritten below
    local idx = sample(t:numel(), opts.k or 40)
    local skipped = 0
    for _, i in ipairs(idx) do
      local v = p[i]
      local function fd(e)
        p[i] = v + e; local lp = proj(fwd(), r)
        p[i] = v - e; local lm = proj(fwd(), r)
        p[i] = v
        return (lp - lm) / (2 * e)
      end
      local e0 = opts.eps or EPS
      local d1 = fd(e0)
      if opts.kinks then
        -- internal ReLUs: a perturbation that carries a pre-activation across 0 changes L
        -- by O(eps), i.e. an O(1) error in the difference. Such a crossing makes the
        -- differences at eps and eps/2 disagree; those coordinates are skipped (counted).
        local d2 = fd(e0 / 2)
        if math.abs(d1 - d2) > ATOL + RTOL * math.abs(d2) then skipped = skipped + 1
        else cmp(what, i, an[i], d2) end
      else
        cmp(what, i, an[i], d1)
      end
    end
    assert(skipped <= #idx / 3, ("%s: %d of %d coordinates sat on a ReLU kink"):format(what, skipped, #idx))
  end
  if not opts.no_input then probe(x, gx, "grad_input") end
  for _, e in ipairs(mod:parameters_and_names()) do
    local prm = e[2]
    if prm.requires_grad then
      assert.is_not_nil(prm.grad, "no gradient for " .. e[1])
      probe(prm.data, prm.grad, e[1])
    else
      assert.is_nil(prm.grad, "frozen/non-trainable " .. e[1] .. " got a gradient")
    end
  end
  return worst
end

-- values away from 0 (ReLU kinks)
local function away(shape)
  local t = spore.randn(shape)
  local p = t:ptr()
  for i = 0, t:numel() - 1 do p[i] = (p[i] >= 0 and 1 or -1) * (0.1 + math.abs(p[i])) end
  return t
end
-- distinct values spaced 0.05 apart in random order (no max-pool ties within eps)
local function distinct(shape)
  local t = spore.empty(shape)
  local n = t:numel()
  local perm = {}
  for i = 1, n do perm[i] = i end
  for i = n, 2, -1 do local j = math.random(1, i); perm[i], perm[j] = perm[j], perm[i] end
  local p = t:ptr()
  for i = 0, n - 1 do p[i] = (perm[i + 1] - n / 2) * 0.05 end
  return t
end

describe("finite-difference gradients", function()
  before_each(function() spore.manual_seed(7); math.randomseed(7) end)

  local convs = {
    { "same, stride 1, odd 7x5, batch 2", 3, 4, 3, { pad_mode = "same" }, { 2, 3, 7, 5 } },
    { "same, stride 2, odd pad bottom/right, batch 1", 3, 4, 3, { pad_mode = "same", stride = 2 }, { 1, 3, 7, 6 } },
    { "valid, stride 2, batch 3", 2, 3, 3, { pad_mode = "valid", stride = 2, has_bias = true }, { 3, 2, 8, 7 } },
    { "pad {1,2,0,1}, dilation 2", 2, 3, 3, { pad_mode = "pad", padding = { 1, 2, 0, 1 }, dilation = 2 }, { 2, 2, 7, 6 } },
    { "groups 2, same, stride 2, bias", 4, 6, 3, { pad_mode = "same", stride = 2, group = 2, has_bias = true }, { 2, 4, 5, 5 } },
    { "1x1 pointwise", 4, 5, 1, { pad_mode = "same" }, { 2, 4, 3, 3 } },
    { "kernel 3x2, same, stride {2,1}", 2, 2, { 3, 2 }, { pad_mode = "same", stride = { 2, 1 } }, { 1, 2, 5, 4 } },
  }
  for _, c in ipairs(convs) do
    it("Conv2d " .. c[1], function()
      local m = nn.Conv2d(c[2], c[3], c[4], c[5])
      jacobian(m, spore.randn(c[6]))
    end)
  end

  it("Conv2d same padding puts the odd pixel bottom/right and gives ceil(in/stride)", function()
    local m = nn.Conv2d(1, 1, 2, { pad_mode = "same", stride = 1, weight_init = 1 })
    local x = spore.ones({ 1, 1, 3, 3 })
    local y = m(x)
    assert.same({ 1, 1, 3, 3 }, y:shape())
    -- total pad 1: none on top/left, one row/column at the bottom/right
    assert.equal(4, y:get({ 1, 1, 1, 1 }))
    assert.equal(1, y:get({ 1, 1, 3, 3 }))
    local m2 = nn.Conv2d(1, 1, 3, { pad_mode = "same", stride = 2 })
    assert.same({ 1, 1, 4, 3 }, m2(spore.randn({ 1, 1, 7, 5 })):shape())
  end)

  it("Dense, batch 1 and batch 3", function()
    jacobian(nn.Dense(5, 4), spore.randn({ 1, 5 }))
    jacobian(nn.Dense(6, 3, { has_bias = false }), spore.randn({ 3, 6 }))
  end)

  it("BatchNorm2d in training (batch statistics), batch 2 and batch 1", function()
    local bn = nn.BatchNorm2d(3, { gamma_init = "normal", beta_init = "normal" })
    bn.gamma.data:normal_(1, 0.5)
    jacobian(bn, spore.randn({ 2, 3, 3, 2 }))
    local bn1 = nn.BatchNorm2d(2, { eps = 1e-4 })
    bn1.gamma.data:normal_(1, 0.5)
    jacobian(bn1, spore.randn({ 1, 2, 3, 3 }))
  end)

  it("BatchNorm2d in eval (moving statistics)", function()
    local bn = nn.BatchNorm2d(3)
    bn.moving_mean.data:normal_(0, 1)
    bn.moving_variance.data:uniform_(0.5, 2)
    bn.gamma.data:normal_(1, 0.5)
    bn:eval()
    jacobian(bn, spore.randn({ 2, 3, 2, 3 }))
  end)

  it("ReLU, Flatten, GlobalAvgPool", function()
    jacobian(nn.ReLU(), away({ 2, 3, 4, 5 }))
    jacobian(nn.Flatten(), spore.randn({ 2, 3, 2, 2 }))
    jacobian(nn.GlobalAvgPool(), spore.randn({ 2, 3, 3, 5 }))
  end)

  it("MaxPool2d same 3/2 and valid 2/2 on odd sizes, batch 1 and 2", function()
    jacobian(nn.MaxPool2d(3, 2, "same"), distinct({ 1, 2, 7, 7 }))
    jacobian(nn.MaxPool2d(2, 2, "valid"), distinct({ 2, 2, 6, 5 }))
  end)

  it("AvgPool2d same 3/2 and valid 2/2", function()
    jacobian(nn.AvgPool2d(3, 2, "same"), spore.randn({ 2, 2, 7, 6 }))
    jacobian(nn.AvgPool2d(2, 2, "valid"), spore.randn({ 1, 3, 5, 5 }))
  end)

  it("Dropout (seeded mask) in training, identity in eval", function()
    local d = nn.Dropout({ p = 0.3 })
    jacobian(d, spore.randn({ 4, 10 }), { reseed = true })
    d:eval()
    local x = spore.randn({ 2, 3 })
    assert.equal(x, d(x))
  end)

  it("SequentialCell: conv → bn → relu → maxpool → flatten → dense", function()
    local net = nn.SequentialCell({ nn.Conv2d(2, 3, 3, { pad_mode = "same" }), nn.BatchNorm2d(3), nn.ReLU(),
      nn.MaxPool2d(2, 2), nn.Flatten(), nn.Dense(12, 4) })
    jacobian(net, spore.randn({ 2, 2, 4, 4 }), { k = 20, kinks = true, eps = 2e-3 })
  end)

  it("ResNet bottleneck block with down-sampling (stride 2) and a basic block", function()
    -- the zoo's Normal(0.01) conv weights make eps a large relative step (BN then divides
    -- by a tiny std); use unit-scale weights, and gamma 1 instead of the zoo's 0 for bn3
    local function rescale(m)
      for _, e in ipairs(m:parameters_and_names()) do
        if e[1]:match("weight$") then e[2].data:normal_(0, 0.5) end
      end
    end
    local b = resnet.ResidualBlock(4, 8, 2, true)
    rescale(b)
    b.bn3.gamma.data:fill_(1)
    jacobian(b, spore.randn({ 2, 4, 5, 5 }), { k = 12, kinks = true, eps = 2e-3 })
    local b2 = resnet.ResidualBlock(3, 3, 1, false)
    rescale(b2)
    b2.bn2d.gamma.data:fill_(1)
    jacobian(b2, spore.randn({ 1, 3, 4, 4 }), { k = 12, kinks = true, eps = 2e-3 })
  end)

  it("frozen parameters get no gradient work", function()
    local net = nn.SequentialCell({ nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Dense(3 * 16, 2) })
    net:freeze("0.")
    assert.is_false(net["0"].weight.requires_grad)
    assert.equal(2, #net:trainable_params())
    jacobian(net, spore.randn({ 1, 2, 4, 4 }))
    assert.is_nil(net["0"].weight.grad)
  end)

  local function loss_check(loss, logits, labels)
    loss:forward(logits, labels)
    local g = loss:backward()
    local an = g:flat()
    local flat = logits:view({ logits:numel() })
    local p = setmetatable({}, { __index = function(_, i) return flat:get({ i + 1 }) end,
      __newindex = function(_, i, v) flat:set({ i + 1 }, v) end })
    for i = 0, logits:numel() - 1 do
      local v = p[i]
      p[i] = v + EPS; local lp = loss:forward(logits, labels)
      p[i] = v - EPS; local lm = loss:forward(logits, labels)
      p[i] = v
      local fd = (lp - lm) / (2 * EPS)
      if loss.reduction == "none" then fd = fd * logits:size(1) end -- value is the mean; grad is of the sum
      assert(math.abs(fd - an[i + 1]) <= ATOL + RTOL * math.abs(an[i + 1]),
        ("logit %d: %g vs %g"):format(i, an[i + 1], fd))
    end
  end

  it("SoftmaxCrossEntropyWithLogits sparse (none/mean/sum) and dense; CrossEntropyLoss", function()
    local labels = spore.tensor({ 2, 0, 4 }, "int32")
    for _, red in ipairs({ "none", "mean", "sum" }) do
      loss_check(nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = red }, spore.randn({ 3, 5 }), labels)
    end
    local dense = spore.tensor({ { 0, 1, 0 }, { 0.5, 0.5, 0 } })
    loss_check(nn.SoftmaxCrossEntropyWithLogits { sparse = false, reduction = "mean" }, spore.randn({ 2, 3 }), dense)
    loss_check(nn.CrossEntropyLoss(), spore.randn({ 1, 4 }), spore.tensor({ 3 }, "int32"))
  end)

  it("CrossEntropyLoss with weight, ignore_index, label_smoothing; probability targets; CrossEntropySmooth", function()
    local y = spore.tensor({ 2, -100, 0, 4 }, "int32")
    for _, red in ipairs({ "mean", "sum", "none" }) do
      loss_check(nn.CrossEntropyLoss { weight = { 0.5, 1, 2, 0.25, 1.5 }, label_smoothing = 0.2, reduction = red },
        spore.randn({ 4, 5 }), y)
    end
    local probs = spore.tensor({ { 0.1, 0.2, 0.7 }, { 0.5, 0.25, 0.25 } })
    loss_check(nn.CrossEntropyLoss { weight = { 1, 2, 3 }, label_smoothing = 0.1 }, spore.randn({ 2, 3 }), probs)
    loss_check(spore.zoo.CrossEntropySmooth(true, "mean", 0.1, 5), spore.randn({ 3, 5 }), spore.tensor({ 1, 4, 0 }, "int32"))
  end)

  it("the loss value matches logsumexp(x) - x[label] computed in Lua", function()
    local x = spore.randn({ 4, 6 })
    local lab = spore.tensor({ 0, 5, 2, 2 }, "int32")
    local l = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "none" }
    local mean = l:forward(x, lab)
    local s = 0
    for n = 1, 4 do
      local m, se = -math.huge, 0
      for c = 1, 6 do m = math.max(m, x:get({ n, c })) end
      for c = 1, 6 do se = se + math.exp(x:get({ n, c }) - m) end
      local v = m + math.log(se) - x:get({ n, lab:get(n) + 1 })
      assert.is_true(math.abs(l.output:get(n) - v) < 1e-5)
      s = s + v
    end
    assert.is_true(math.abs(mean - s / 4) < 1e-5)
  end)
end)
