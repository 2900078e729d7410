-- optim_spec.lua — Momentum, SGD and Adam against updates computed by hand (in Lua
-- doubles) over several steps: Nesterov, weight decay (not on gamma/beta), array and
-- function learning rates, loss_scale, parameter groups, frozen parameters, state names.
local spore = require("spore")
local nn, optim = spore.nn, spore.optim

local TOL = 2e-6

local function P(name, values, grads)
  local p = nn.Parameter(spore.tensor(values), name, true)
  p.grad = spore.tensor(grads)
  return p
end
local function close(t, ref, what)
  local f = t:flat()
  for i = 1, #ref do
    assert(math.abs(f[i] - ref[i]) <= TOL * math.max(1, math.abs(ref[i])),
      ("%s[%d]: %.9g vs hand-computed %.9g"):format(what or "value", i, f[i], ref[i]))
  end
end
local function names(opt)
  local r = {}
  for i, e in ipairs(opt:parameters_and_names()) do r[i] = e[1] end
  return r
end

-- hand reference of MindSpore's ApplyMomentum
local function ref_momentum(p, g, steps, lr, u, wd, nesterov, ls)
  p = { unpack(p) }
  local v = {}
  for i = 1, #p do v[i] = 0 end
  for s = 1, steps do
    local l = type(lr) == "table" and lr[math.min(s, #lr)] or lr
    for i = 1, #p do
      local gg = g[i] / (ls or 1) + (wd or 0) * p[i]
      v[i] = u * v[i] + gg
      if nesterov then p[i] = p[i] - (l * gg + l * u * v[i]) else p[i] = p[i] - l * v[i] end
    end
  end
  return p, v
end

describe("Momentum", function()
  it("matches v = u*v + g; p -= lr*v over 4 steps, with MindSpore's state names", function()
    local a, b = P("fc.weight", { 1, -2, 0.5 }, { 0.5, 1, -0.25 }), P("fc.bias", { 0.3 }, { -1 })
    local opt = optim.Momentum({ a, b }, 0.1, 0.9)
    assert.same({ "global_step", "learning_rate", "fc.weight", "fc.bias", "momentum", "moments.fc.weight",
      "moments.fc.bias" }, names(opt))
    assert.same({}, opt.lr_param.data:shape())
    assert.same({}, opt.momentum_param.data:shape())
    assert.same({ 1 }, opt.global_step_param.data:shape())
    assert.equal("int32", opt.global_step_param.data:dtype())
    for _ = 1, 4 do opt:step() end
    local pa, va = ref_momentum({ 1, -2, 0.5 }, { 0.5, 1, -0.25 }, 4, 0.1, 0.9)
    close(a.data, pa, "a"); close(opt.moments[1].data, va, "moments.a")
    close(b.data, (ref_momentum({ 0.3 }, { -1 }, 4, 0.1, 0.9)), "b")
    assert.equal(4, opt:global_step())
  end)

  it("Nesterov, weight decay skipping gamma/beta, loss_scale", function()
    local w, g, be = P("conv.weight", { 1, 2 }, { 0.1, -0.2 }), P("bn.gamma", { 1 }, { 0.3 }), P("bn.beta", { 0 }, { 0.2 })
    local opt = optim.Momentum({ w, g, be }, 0.05, 0.9, { weight_decay = 0.01, use_nesterov = true, loss_scale = 4 })
    for _ = 1, 3 do opt:step() end
    close(w.data, (ref_momentum({ 1, 2 }, { 0.1, -0.2 }, 3, 0.05, 0.9, 0.01, true, 4)), "weight")
    close(g.data, (ref_momentum({ 1 }, { 0.3 }, 3, 0.05, 0.9, 0, true, 4)), "gamma (no decay)")
    close(be.data, (ref_momentum({ 0 }, { 0.2 }, 3, 0.05, 0.9, 0, true, 4)), "beta (no decay)")
  end)

  it("array learning rate indexed by global_step, stored whole as learning_rate; running out is an error", function()
    local a = P("w", { 1, 1 }, { 1, -1 })
    local lrs = { 0.1, 0.05, 0.02 }
    local opt = optim.Momentum({ a }, lrs, 0.9)
    assert.same({ 3 }, opt.lr_param.data:shape())
    assert.is_true(math.abs(opt:get_lr() - 0.1) < 1e-7)
    opt:step()
    assert.is_true(math.abs(opt:get_lr() - 0.05) < 1e-7)
    opt:step(); opt:step()
    close(a.data, (ref_momentum({ 1, 1 }, { 1, -1 }, 3, lrs, 0.9)), "w")
    -- past the end: no learning rate, and the next step is an error (MindSpore's Gather fails)
    assert.is_nil(opt:get_lr())
    assert.has_error(function() opt:step() end,
      "optimizer: the learning-rate array 'learning_rate' has 3 values and step 4 needs value 3 (0-based): it has run out "
      .. "(MindSpore fails here too: its Gather of learning_rate[global_step] is out of range)")
    assert.equal(3, opt:global_step())
  end)

  it("learning rate as a function of the step", function()
    local a = P("w", { 2 }, { 1 })
    local opt = optim.Momentum({ a }, function(step) return 0.1 / (1 + step) end, 0)
    for _ = 1, 3 do opt:step() end
    close(a.data, { 2 - 0.1 - 0.05 - 0.1 / 3 }, "w")
  end)

  it("frozen parameters and parameters without gradients are left alone", function()
    local a, b = P("a", { 1 }, { 1 }), P("b", { 1 }, { 1 })
    local c = nn.Parameter(spore.tensor({ 5 }), "c", true) -- no grad
    b.requires_grad = false
    local opt = optim.Momentum({ a, b, c }, 0.1, 0.9)
    opt:step()
    close(a.data, { 0.9 }); close(b.data, { 1 }); close(c.data, { 5 })
    close(opt.moments[2].data, { 0 }, "moments.b")
  end)

  it("parameter groups with their own lr and weight decay", function()
    local a, b = P("a", { 1 }, { 0.5 }), P("b", { 1 }, { 0.5 })
    local opt = optim.Momentum({ { params = { a }, lr = 0.5, weight_decay = 0.1 }, { params = { b } } }, 0.1, 0.9)
    opt:step(); opt:step()
    close(a.data, (ref_momentum({ 1 }, { 0.5 }, 2, 0.5, 0.9, 0.1)), "a")
    close(b.data, (ref_momentum({ 1 }, { 0.5 }, 2, 0.1, 0.9)), "b")
    -- MindSpore: the group with an lr gets learning_rate_group_0, the other shares learning_rate
    assert.same({ "global_step", "learning_rate_group_0", "learning_rate", "a", "b", "momentum", "moments.a",
      "moments.b" }, names(opt))
    assert.is_true(math.abs(opt:get_lr(1) - 0.5) < 1e-7 and math.abs(opt:get_lr(2) - 0.1) < 1e-7)
  end)

  it("state loaded in place (momentum, moments, global_step) drives the next step", function()
    local a = P("w", { 1 }, { 1 })
    local opt = optim.Momentum({ a }, { 0.1, 0.2, 0.3 }, 0.9)
    opt.momentum_param.data:copy_(spore.tensor(0.5))
    opt.moments[1].data:copy_(spore.tensor({ 2 }))
    opt.global_step_param.data:copy_(spore.tensor({ 2 }, "int32"))
    opt:step()
    -- v = 0.5*2 + 1 = 2; lr = lrs[global_step 2] = 0.3; p = 1 - 0.6
    close(a.data, { 0.4 })
    assert.equal(3, opt:global_step())
  end)

  it("trains a network: accepts net:trainable_params() and names follow the net", function()
    local net = spore.models.lenet5()
    local opt = optim.Momentum(net:trainable_params(), 0.01, 0.9)
    local n = names(opt)
    assert.equal("global_step", n[1]); assert.equal("learning_rate", n[2])
    assert.equal("conv1.weight", n[3]); assert.equal("momentum", n[11])
    assert.equal("moments.conv1.weight", n[12]); assert.equal("moments.fc3.bias", n[#n])
    assert.equal(19, #n)
    assert.equal(net.conv1.weight, opt:parameters_and_names()[3][2])
  end)
end)

describe("SGD", function()
  it("first step accum = g, then u*accum + (1-dampening)*g; Nesterov; state names", function()
    local a = P("w", { 1, -1 }, { 0.4, 0.2 })
    local opt = optim.SGD({ a }, 0.1, { momentum = 0.9, dampening = 0.1, weight_decay = 0.01 })
    assert.same({ "global_step", "learning_rate", "w", "momentum", "accum.w", "stat.w" }, names(opt))
    local p, acc = { 1, -1 }, { 0, 0 }
    for s = 1, 3 do
      opt:step()
      for i = 1, 2 do
        local g = ({ 0.4, 0.2 })[i] + 0.01 * p[i]
        acc[i] = s == 1 and g or 0.9 * acc[i] + 0.9 * g
        p[i] = p[i] - 0.1 * acc[i]
      end
    end
    close(a.data, p, "sgd"); close(opt.accum[1].data, acc, "accum")
    local b = P("w", { 1 }, { 1 })
    local o2 = optim.SGD({ b }, 0.1, { momentum = 0.5, nesterov = true })
    o2:step(); o2:step()
    -- s1: acc=1, p=1-0.1*(1+0.5) = 0.85; s2: acc=1.5, p -= 0.1*(1+0.75)
    close(b.data, { 0.85 - 0.175 })
    local c = P("w", { 1 }, { 2 })
    optim.SGD({ c }, 0.1):step()
    close(c.data, { 0.8 }, "plain sgd")
  end)
end)

describe("Adam", function()
  it("matches MindSpore's update over 5 steps, with beta powers and moment names", function()
    local a = P("fc.weight", { 0.5, -0.3 }, { 0.2, -0.1 })
    local b = P("bn.gamma", { 1 }, { 0.05 })
    local opt = optim.Adam({ a, b }, 0.01, { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.1 })
    assert.same({ "global_step", "learning_rate", "fc.weight", "bn.gamma", "beta1_power", "beta2_power",
      "moment1.fc.weight", "moment1.bn.gamma", "moment2.fc.weight", "moment2.bn.gamma" }, names(opt))
    local function ref(p, g, wd, steps, nesterov)
      p = { unpack(p) }
      local m, v, b1p, b2p = {}, {}, 1, 1
      for i = 1, #p do m[i], v[i] = 0, 0 end
      for _ = 1, steps do
        b1p, b2p = b1p * 0.9, b2p * 0.999
        local lr_t = 0.01 * math.sqrt(1 - b2p) / (1 - b1p)
        for i = 1, #p do
          local gg = g[i] + wd * p[i]
          m[i] = m[i] + (gg - m[i]) * 0.1
          v[i] = v[i] + (gg * gg - v[i]) * 0.001
          local num = nesterov and (m[i] * 0.9 + 0.1 * gg) or m[i]
          p[i] = p[i] - lr_t * num / (math.sqrt(v[i]) + 1e-8)
        end
      end
      return p, m, v, b1p
    end
    for _ = 1, 5 do opt:step() end
    local pa, ma, va, b1p = ref({ 0.5, -0.3 }, { 0.2, -0.1 }, 0.1, 5)
    close(a.data, pa, "param"); close(opt.moment1[1].data, ma, "moment1"); close(opt.moment2[1].data, va, "moment2")
    close(b.data, (ref({ 1 }, { 0.05 }, 0, 5)), "gamma (no decay)")
    close(opt.beta1_power.data, { b1p }, "beta1_power")
    local c = P("w", { 0.5 }, { 0.3 })
    local o2 = optim.Adam({ c }, 0.01, { use_nesterov = true })
    for _ = 1, 3 do o2:step() end
    close(c.data, (ref({ 0.5 }, { 0.3 }, 0, 3, true)), "nesterov")
  end)
end)
