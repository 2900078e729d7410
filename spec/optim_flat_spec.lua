-- optim_flat_spec.lua — flat training state: parameters, gradients and optimizer slots are
-- views into one buffer per bucket (group, device, dtype, weight decay); one engine update
-- call per bucket; results identical (bit for bit) to an independent per-parameter
-- reference; two optimizers over the same parameters keep their own groups (bug 1 of #8);
-- optimizers are callable classes; no :ptr() in lua/spore/optim.
require("spec.helper")
local spore = require("spore")
local nn, optim = spore.nn, spore.optim
local K = require("ffi.nn")

local function P(name, values, grads)
  local p = nn.Parameter(spore.tensor(values), name, true)
  if grads then p.grad = spore.tensor(grads) end
  return p
end

-- count the calls of K[fname] while fn runs
local function count_calls(fname, fn)
  local orig, n = K[fname], 0
  K[fname] = function(...) n = n + 1; return orig(...) end
  local ok, err = pcall(fn)
  K[fname] = orig
  if not ok then error(err, 0) end
  return n
end

local function exact(a, b, what)
  local fa, fb = a:flat(), b:flat()
  assert.equal(#fb, #fa, what .. ": element count")
  for i = 1, #fa do
    if fa[i] ~= fb[i] then
      error(("%s[%d]: %.9g, reference %.9g (must be bit-identical)"):format(what, i, fa[i], fb[i]), 2)
    end
  end
end

local function bucket_of(opt, p)
  for _, b in ipairs(opt.buckets) do
    for i, q in ipairs(b.params) do if q == p then return b, i end end
  end
end

local function lenet_with_grads()
  spore.manual_seed(3)
  local net = spore.models.lenet5()
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local x, y = spore.randn({ 8, 1, 32, 32 }), spore.tensor({ 0, 1, 2, 3, 4, 5, 6, 7 }, "int32")
  local function backward()
    net:zero_grad(); loss:forward(net(x), y); net:backward(x, loss:backward(), false)
  end
  return net, backward
end

describe("flat training state", function()
  it("puts every trainable parameter, gradient and moment of a LeNet into one buffer each", function()
    local net, backward = lenet_with_grads()
    backward() -- the layers allocate their gradients
    local opt = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    assert.equal(1, #opt.buckets)
    local b = opt.buckets[1]
    local total = 0
    for i, p in ipairs(net:trainable_params()) do
      total = total + p.data:numel()
      assert.is_true(p.data:shares_storage(b.pbuf), p.name .. ".data must be a view of the flat buffer")
      assert.is_true(p.grad:shares_storage(b.gbuf), p.name .. ".grad must be a view of the flat gradient buffer")
      assert.is_true(opt.moments[i].data:shares_storage(b.slots.moments.buf), "moments." .. p.name)
      assert.is_false(p.data:shares_storage(p.grad))
    end
    -- slices start 64-byte aligned: the buffer holds at most 15 padding floats per parameter
    assert.is_true(b.pbuf:numel() >= total and b.pbuf:numel() < total + 16 * #net:trainable_params())
    assert.equal(b.pbuf:numel(), b.gbuf:numel())
    -- training keeps the views: the layers accumulate into p.grad in place
    local views = {}
    for i, p in ipairs(net:trainable_params()) do views[i] = { p.data, p.grad } end
    for _ = 1, 3 do backward(); opt:step() end
    for i, p in ipairs(net:trainable_params()) do
      assert.is_true(rawequal(views[i][1], p.data), p.name .. ".data replaced during training")
      assert.is_true(rawequal(views[i][2], p.grad), p.name .. ".grad replaced during training")
    end
    -- net:zero_grad() and opt:zero_grad() clear the flat gradient buffer
    backward()
    assert.is_true(b.gbuf:abs():sum() > 0)
    opt:zero_grad()
    assert.equal(0, b.gbuf:abs():sum())
  end)

  it("adopts gradients allocated after the optimizer was made (first backward)", function()
    local net, backward = lenet_with_grads()
    local opt = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    for _, p in ipairs(net:trainable_params()) do assert.is_nil(p.grad) end
    backward()
    local fresh = {}
    for i, p in ipairs(net:trainable_params()) do fresh[i] = p.grad:clone() end
    opt:step()
    local b = opt.buckets[1]
    for i, p in ipairs(net:trainable_params()) do
      assert.is_true(p.grad:shares_storage(b.gbuf), p.name .. ".grad moved into the flat buffer")
      exact(p.grad, fresh[i], p.name .. ".grad")
    end
  end)

  it("makes one update call per bucket, splitting only on weight decay, groups and inactive parameters", function()
    local net, backward = lenet_with_grads()
    backward()
    local opt = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    assert.equal(1, count_calls("momentum_update", function() opt:step() end))
    assert.equal(1, count_calls("momentum_update", function() opt:step() end))
    -- two groups: one call each
    local ps = net:trainable_params()
    local body, head = {}, {}
    for i, p in ipairs(ps) do if i <= 6 then body[#body + 1] = p else head[#head + 1] = p end end
    local o2 = optim.Momentum({ { params = body }, { params = head, lr = 0.1 } }, 0.01, 0.9)
    assert.equal(2, #o2.buckets)
    assert.equal(2, count_calls("momentum_update", function() o2:step() end))
    -- weight decay filtered by name (gamma/beta keep 0): one bucket per decay value
    local w, g, be = P("conv.weight", { 1, 2 }, { 0.1, -0.2 }), P("bn.gamma", { 1 }, { 0.3 }), P("bn.beta", { 0 }, { 0.2 })
    local o3 = optim.SGD({ w, g, be }, 0.1, { momentum = 0.9, weight_decay = 0.01 })
    assert.equal(2, #o3.buckets)
    assert.equal(2, count_calls("sgd_update", function() o3:step() end))
    -- a frozen parameter in the middle splits its bucket into two runs
    local a, c, d = P("a", { 1 }, { 1 }), P("c", { 1 }, { 1 }), P("d", { 1 }, { 1 })
    local o4 = optim.Adam({ a, c, d }, 0.01)
    c.requires_grad = false
    assert.equal(2, count_calls("adam_update", function() o4:step() end))
    c.requires_grad = true
    assert.equal(1, count_calls("adam_update", function() o4:step() end))
  end)

  -- an independent reference: the same engine kernels, one call per parameter, on copies
  local function reference(kind, init, grads, steps, opts)
    local st = {}
    for i, v in ipairs(init) do
      st[i] = { p = spore.tensor(v), s1 = spore.zeros({ #v }), s2 = spore.zeros({ #v }), first = true }
    end
    local b1p, b2p = spore.tensor(1), spore.tensor(1) -- float32, as MindSpore's beta powers
    for s = 1, steps do
      local lr = type(opts.lr) == "table" and opts.lr[math.min(s, #opts.lr)] or opts.lr
      if kind == "adam" then
        b1p:fill_(b1p:item() * 0.9); b2p:fill_(b2p:item() * 0.999)
      end
      for i, e in ipairs(st) do
        local g = grads[s][i]
        if g then
          g = spore.tensor(g)
          local wd = opts.decay[i]
          if kind == "momentum" then
            K.momentum_update(e.p, e.s1, g, lr, 0.9, wd, opts.loss_scale or 1, opts.nesterov)
          elseif kind == "sgd" then
            K.sgd_update(e.p, e.s1, g, lr, 0.9, 0.1, wd, 1, false, e.first)
            e.first = false
          else
            K.adam_update(e.p, e.s1, e.s2, g, lr, 0.9, 0.999, 1e-8, b1p:item(), b2p:item(), wd, 1, false)
          end
        end
      end
    end
    return st
  end

  local INIT = { { 0.5, -1.25, 2 }, { 0.75 }, { -0.3, 0.1 }, { 1.5, 0.25 }, { 3 } }
  local NAMES = { "fc.weight", "bn.gamma", "conv.weight", "frozen.weight", "late.weight" }
  -- per step, the gradient of each parameter (nil: no gradient that step)
  local GRADS = {
    { { 0.1, 0.2, -0.3 }, { 0.5 }, { 1, -1 }, nil, nil },
    { { -0.2, 0.4, 0.1 }, { -0.25 }, { 0.5, 0.5 }, nil, { 2 } },
    { { 0.3, -0.1, 0.2 }, { 0.125 }, { -0.75, 1 }, nil, { -1 } },
    { { 0.05, 0.05, 0.05 }, { 1 }, { 0.2, -0.4 }, nil, { 0.5 } },
  }

  for _, kind in ipairs({ "momentum", "sgd", "adam" }) do
    it(kind .. ": bit-identical to per-parameter updates, with weight decay, a frozen and a late parameter", function()
      local params = {}
      for i, v in ipairs(INIT) do params[i] = nn.Parameter(spore.tensor(v), NAMES[i], true) end
      params[4].requires_grad = false
      local wd = 0.05
      local opt
      if kind == "momentum" then
        opt = optim.Momentum(params, 0.1, 0.9, { weight_decay = wd, use_nesterov = true, loss_scale = 2 })
      elseif kind == "sgd" then
        opt = optim.SGD(params, { 0.1, 0.05, 0.02, 0.01 }, { momentum = 0.9, dampening = 0.1, weight_decay = wd })
      else
        opt = optim.Adam(params, 0.01, { weight_decay = wd })
      end
      local decay = { wd, 0, wd, wd, wd } -- bn.gamma: no decay
      for s = 1, #GRADS do
        for i = 1, #params do
          local g = GRADS[s][i]
          if g then
            -- alternate: a fresh tensor assigned to p.grad, or values copied into the view
            if s % 2 == 1 or params[i].grad == nil then params[i].grad = spore.tensor(g)
            else params[i].grad:copy_(spore.tensor(g)) end
          end
        end
        opt:step()
      end
      local lr = ({ momentum = 0.1, sgd = { 0.1, 0.05, 0.02, 0.01 }, adam = 0.01 })[kind]
      local ref = reference(kind, INIT, GRADS, #GRADS, { lr = lr, decay = decay,
        loss_scale = kind == "momentum" and 2 or 1, nesterov = kind == "momentum" })
      local s1 = ({ momentum = opt.moments, sgd = opt.accum, adam = opt.moment1 })[kind]
      for i, p in ipairs(params) do
        exact(p.data, ref[i].p, kind .. " " .. p.name)
        exact(s1[i].data, ref[i].s1, kind .. " slot of " .. p.name)
        if kind == "adam" then exact(opt.moment2[i].data, ref[i].s2, "moment2 of " .. p.name) end
        local b = bucket_of(opt, p)
        assert.is_true(p.data:shares_storage(b.pbuf), p.name .. " lives in its bucket")
      end
      exact(params[4].data, spore.tensor(INIT[4]), "the frozen parameter is untouched")
      exact(s1[4].data, spore.zeros({ 2 }), "the frozen parameter's state is untouched")
      if kind == "sgd" then -- stat: 0 once a parameter was updated, 1 for the frozen one
        assert.equal(0, opt.stat[1].data:get(1)); assert.equal(0, opt.stat[5].data:get(1))
        assert.equal(1, opt.stat[4].data:get(1))
      end
      assert.equal(#GRADS, opt:global_step())
    end)
  end

  it("net:freeze / unfreeze after the optimizer was made: frozen weights stay, fresh gradients are adopted", function()
    local net, backward = lenet_with_grads()
    backward()
    local opt = optim.Momentum(net:trainable_params(), 0.05, 0.9)
    local b = opt.buckets[1]
    net:freeze("conv1")
    backward()
    local w0 = net.conv1.weight.data:clone()
    local m0 = opt.moments[1].data:clone()
    local n = count_calls("momentum_update", function() opt:step() end)
    assert.equal(1, n) -- conv1.weight (LeNet conv1 has no bias) is first: one run, the rest
    exact(net.conv1.weight.data, w0, "frozen conv1.weight")
    exact(opt.moments[1].data, m0, "moments of the frozen conv1.weight")
    assert.is_true(net.conv1.weight.data:shares_storage(b.pbuf))
    net:unfreeze("conv1")
    backward() -- the layer allocates a new gradient tensor for conv1.weight
    assert.is_false(net.conv1.weight.grad:shares_storage(b.gbuf))
    local g = net.conv1.weight.grad:clone()
    opt:step()
    assert.is_true(net.conv1.weight.grad:shares_storage(b.gbuf))
    exact(net.conv1.weight.data, w0 - g * 0.05, "conv1.weight once unfrozen (v was 0)")
  end)

  it("keeps the views when a checkpoint is loaded and saves MindSpore's names in order", function()
    local net, backward = lenet_with_grads()
    backward()
    local opt = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    for _ = 1, 2 do backward(); opt:step() end
    local dir = os.tmpname(); os.remove(dir)
    local path = spore.save_checkpoint(opt, dir .. ".ckpt")
    local net2, backward2 = lenet_with_grads()
    backward2()
    local opt2 = optim.Momentum(net2:trainable_params(), 0.01, 0.9)
    local before = {}
    for i, e in ipairs(opt2:parameters_and_names()) do before[i] = e[2].data end
    local pnl, cnl = spore.load_param_into_net(opt2, spore.load_checkpoint(path))
    os.remove(path)
    assert.same({}, pnl); assert.same({}, cnl)
    local n1, n2 = opt:parameters_and_names(), opt2:parameters_and_names()
    assert.equal(#n1, #n2)
    for i, e in ipairs(n2) do
      assert.equal(n1[i][1], e[1])
      assert.is_true(rawequal(before[i], e[2].data), e[1] .. ": loaded in place")
      exact(e[2].data, n1[i][2].data, e[1])
    end
    assert.equal("moments.conv1.weight", n2[11][1])
    assert.is_true(opt2.moments[1].data:shares_storage(opt2.buckets[1].slots.moments.buf))
    assert.equal(2, opt2:global_step())
  end)

  it("lives on the parameters' device, follows them when they move, refuses a group across devices", function()
    local a = nn.Parameter(spore.tensor({ 1, 2 }):to("sim"), "a", true)
    local b = nn.Parameter(spore.tensor({ 3 }):to("sim"), "b", true)
    a.grad, b.grad = spore.tensor({ 0.5, 0.5 }):to("sim"), spore.tensor({ 1 }):to("sim")
    local opt = optim.Momentum({ a, b }, 0.1, 0.9)
    assert.equal("sim", opt.buckets[1].pbuf:device())
    assert.equal("sim", opt.moments[1].data:device())
    assert.equal("sim", opt.global_step_param.data:device())
    opt:step()
    assert.equal(1, opt:global_step())
    exact(a.data:to("cpu"), spore.tensor({ 0.95, 1.95 }), "a on sim")
    -- moved after the optimizer was made (as Module:to does): the bucket moves too
    local c, d = P("c", { 1, 1 }, { 1, -1 }), P("d", { 2 }, { 1 })
    local o2 = optim.Momentum({ c, d }, 0.1, 0.9)
    o2:step()
    c.data, c.grad = c.data:to("sim"), c.grad:to("sim")
    d.data, d.grad = d.data:to("sim"), d.grad:to("sim")
    o2:step()
    assert.equal("sim", o2.buckets[1].pbuf:device())
    assert.is_true(c.data:shares_storage(o2.buckets[1].pbuf))
    assert.is_true(o2.moments[1].data:shares_storage(o2.buckets[1].slots.moments.buf))
    -- v1 = g, p1 = p0 - 0.1 g; v2 = 0.9 g + g, p2 = p1 - 0.19 g
    exact(c.data:to("cpu"), spore.tensor({ 1 - 0.1 - 0.19, 1 + 0.1 + 0.19 }), "c after the move")
    exact(o2.moments[2].data:to("cpu"), spore.tensor({ 1.9 }), "moments.d after the move")
    -- one parameter of a group on another device
    local e, f = P("e", { 1 }, { 1 }), nn.Parameter(spore.tensor({ 1 }):to("sim"), "f", true)
    assert.has_error(function() optim.Momentum({ e, f }, 0.1, 0.9) end)
    local ok, err = pcall(optim.Momentum, { e, f }, 0.1, 0.9)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("share one device", 1, true), err)
  end)
end)

describe("two optimizers over the same parameters (bug 1 of #8)", function()
  it("each keeps its own groups: learning rates and weight decay", function()
    local a, b = P("a", { 1 }, { 0.5 }), P("b", { 1 }, { 0.5 })
    local first = optim.Momentum({ { params = { a }, lr = 0.5 }, { params = { b }, lr = 0.1 } }, 0.1, 0.9)
    -- a second optimizer whose single group carries a weight decay
    local second = optim.Momentum({ { params = { a, b }, weight_decay = 0.5 } }, 0.2, 0.9)
    assert.is_true(second ~= nil)
    first:step()
    -- first: v = g, p -= lr*g with ITS lrs (0.5 for a, 0.1 for b) and no decay
    exact(a.data, spore.tensor({ 1 - 0.5 * 0.5 }), "a with the first optimizer's lr")
    exact(b.data, spore.tensor({ 1 - 0.1 * 0.5 }), "b with the first optimizer's lr (not group 1's)")
    assert.equal(2, first:group_index(b))
    assert.equal(0, first:decay_of(a))
    assert.equal(0.5, second:decay_of(a))
    -- and the second still uses its own: g' = g + 0.5 p
    local pa, pb = a.data:item(), b.data:item()
    second:step()
    local ga, gb = 0.5 + 0.5 * pa, 0.5 + 0.5 * pb
    assert.near(pa - 0.2 * ga, a.data:item(), 1e-6)
    assert.near(pb - 0.2 * gb, b.data:item(), 1e-6)
  end)

  it("share the flat buffers when the layout is the same, and stay right when it is not", function()
    local net, backward = lenet_with_grads()
    backward()
    local o1 = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    local o2 = optim.SGD(net:trainable_params(), 0.01)
    assert.is_true(rawequal(o1.buckets[1].pbuf, o2.buckets[1].pbuf))
    assert.is_false(rawequal(o1.buckets[1].slots.moments.buf, o2.buckets[1].slots.accum.buf))
    -- another layout (two groups): values move between the buffers, updates stay exact
    local ps = net:trainable_params()
    local o3 = optim.SGD({ { params = { ps[1], ps[2] } }, { params = { ps[3] } } }, 0.5)
    backward()
    local w0, g0 = ps[1].data:clone(), ps[1].grad:clone()
    o1:step() -- plain Momentum first step: p -= lr*g
    local w1 = ps[1].data:clone()
    exact(w1, w0 - g0 * 0.01, "o1 step")
    o3:step()
    assert.is_true(ps[1].data:shares_storage(o3.buckets[1].pbuf))
    exact(ps[1].data, w1 - g0 * 0.5, "o3 step")
    local w3 = ps[1].data:clone()
    o2:step()
    assert.is_true(ps[1].data:shares_storage(o2.buckets[1].pbuf))
    exact(ps[1].data, w3 - g0 * 0.01, "o2 step after o3")
  end)
end)

describe("optimizer classes", function()
  it("each file returns its class: callable, with .new, instances of it", function()
    for _, name in ipairs({ "Momentum", "SGD", "Adam" }) do
      local cls = require("spore.optim." .. name:lower())
      assert.equal(cls, optim[name])
      assert.equal("table", type(cls))
      assert.equal("function", type(cls.new))
      local p = P("w", { 1 }, { 1 })
      local o1 = name == "Momentum" and cls({ p }, 0.1, 0.9) or cls({ p }, 0.1)
      local o2 = name == "Momentum" and cls.new({ p }, 0.1, 0.9) or cls.new({ p }, 0.1)
      assert.equal(cls, getmetatable(o1)); assert.equal(cls, getmetatable(o2))
      assert.equal("function", type(o1.step)); assert.equal("function", type(o1.zero_grad))
    end
    assert.equal(require("spore.optim.optimizer"), optim.Optimizer)
    assert.has_error(function() optim.Optimizer({}) end)
    local m = optim.Momentum({ P("w", { 1 }, { 1 }) }, { learning_rate = 0.1, momentum = 0.9 })
    assert.near(0.1, m:get_lr(), 1e-7)
  end)

  it("refuses unknown options by name", function()
    local ok, err = pcall(optim.Momentum, { P("w", { 1 }) }, 0.1, 0.9, { nesterov = true })
    assert.is_false(ok); assert.truthy(tostring(err):find("'nesterov'", 1, true), err)
    ok, err = pcall(optim.Adam, { P("w", { 1 }) }, 0.1, { use_amsgrad = true })
    assert.is_false(ok); assert.truthy(tostring(err):find("use_amsgrad", 1, true), err)
    ok, err = pcall(optim.SGD, { { params = { P("w", { 1 }) }, grad_centralization = true } }, 0.1)
    assert.is_false(ok); assert.truthy(tostring(err):find("grad_centralization", 1, true), err)
    local w = P("w", { 1 })
    ok, err = pcall(optim.SGD, { { params = { w } }, { params = { w } } }, 0.1)
    assert.is_false(ok); assert.truthy(tostring(err):find("'w' appears twice", 1, true), err)
  end)

  it("lua/spore/optim reads no tensor memory (no :ptr())", function()
    for _, f in ipairs({ "optimizer", "momentum", "sgd", "adam", "flat", "init" }) do
      local src = spec_helper.read_file("lua/spore/optim/" .. f .. ".lua")
      assert.is_nil(src:find(":ptr(", 1, true), f .. ".lua uses :ptr()")
      assert.is_nil(src:find("ffi", 1, true) and src:find("ffi.C", 1, true), f .. ".lua uses ffi.C")
    end
  end)
end)
