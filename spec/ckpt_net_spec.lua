-- ckpt_net_spec.lua — load_param_into_net on small fake nets and optimizers built from
-- plain tables (the parameters_and_names() contract): report, renames, shape and
-- dtype policies, MindSpore's prefix fallback without crossing into optimizer state.
require("spec.helper")
local spore = require("spore")
local ckpt = spore.ckpt

local function P(name, shape, dtype) return { name = name, data = spore.zeros(shape, dtype), requires_grad = true } end
local function net_of(list)
  return { params = list, parameters_and_names = function(self)
    local r = {}
    for i, p in ipairs(self.params) do r[i] = { p.name, p } end
    return r
  end }
end
local function small_net(head)
  return net_of({ P("conv.weight", { 4, 3, 3, 3 }), P("conv.bias", { 4 }), P("bn.moving_mean", { 4 }),
    P("bn.moving_variance", { 4 }), P("bn.gamma", { 4 }), P("bn.beta", { 4 }), P("fc.weight", { head or 5, 16 }),
    P("fc.bias", { head or 5 }) })
end
local function momentum_opt(net)
  local list = {}
  for _, p in ipairs(net.params) do list[#list + 1] = p end
  list[#list + 1] = { name = "learning_rate", data = spore.zeros({}) }
  list[#list + 1] = { name = "momentum", data = spore.zeros({}) }
  for _, p in ipairs(net.params) do
    if not p.name:match("moving") then list[#list + 1] = { name = "moments." .. p.name, data = spore.zeros(p.data:shape()) } end
  end
  list[#list + 1] = { name = "global_step", data = spore.zeros({ 1 }, "int32") }
  return net_of(list)
end
local function fixture(name)
  local p = spec_helper.local_fixture(name)
  return p
end

describe("load_param_into_net", function()
  it("loads every parameter in place and reports each tensor", function()
    local p = fixture("ms_small.ckpt")
    if not p then return pending("SKIPPED: spec/fixtures/ms_small.ckpt missing") end
    local net = small_net()
    local before = net.params[1].data
    local d = spore.load_checkpoint(p)
    local pnl, cnl, rep = spore.load_param_into_net(net, d)
    assert.same({}, pnl)
    assert.same({ "epoch_num", "step_num", "lr_f", "note" }, cnl)
    assert.equal(before, net.params[1].data, "same tensor object")
    assert.equal(d["conv.weight"]:get({ 1, 1, 1, 1 }), net.params[1].data:get({ 1, 1, 1, 1 }))
    assert.equal(8, #rep.loaded)
    assert.matches("loaded 8", rep:summary())
  end)

  it("load_checkpoint(path, {net=}) also loads the net", function()
    local p = fixture("ms_small.ckpt")
    if not p then return pending("SKIPPED") end
    local net = small_net()
    local d, rep = spore.load_checkpoint(p, { net = net })
    assert.is_not_nil(d["fc.bias"])
    assert.equal(d["fc.bias"]:get({ 2 }), net.params[8].data:get({ 2 }))
    assert.equal(8, #rep.loaded)
  end)

  it("shape mismatch: error by default naming both shapes; skip when asked", function()
    local p = fixture("ms_small.ckpt")
    if not p then return pending("SKIPPED") end
    local d = spore.load_checkpoint(p)
    local ok, err = pcall(spore.load_param_into_net, small_net(10), d)
    assert.is_false(ok)
    assert.matches("fc.weight", err, 1, true)
    assert.matches("[5,16]", err, 1, true)
    assert.matches("[10,16]", err, 1, true)
    local net = small_net(10)
    local pnl, _, rep = spore.load_param_into_net(net, d, { on_shape_mismatch = "skip" })
    assert.same({ "fc.weight", "fc.bias" }, pnl)
    assert.equal(2, #rep.skipped)
    assert.equal("shape mismatch", rep.skipped[1].reason)
    assert.same({ 5, 16 }, rep.skipped[1].ckpt_shape)
    assert.same({ 10, 16 }, rep.skipped[1].net_shape)
    assert.equal(0, net.params[7].data:sum())
  end)

  it("float<->float and int<->int casts are reported; strict_load makes them errors", function()
    local d = ckpt.dict({ { "w", spore.tensor({ 1.5, 2.5 }, "float64") }, { "i", spore.tensor({ 3, 4 }, "int64") } })
    local net = net_of({ P("w", { 2 }, "float16"), P("i", { 2 }, "int32") })
    local _, _, rep = spore.load_param_into_net(net, d)
    assert.equal(2, #rep.cast)
    assert.same({ "float64", "float16" }, { rep.cast[1].from, rep.cast[1].to })
    assert.equal(2.5, net.params[1].data:get({ 2 }))
    assert.equal(4, net.params[2].data:get({ 2 }))
    local ok, err = pcall(spore.load_param_into_net, net, d, { strict_load = true })
    assert.is_false(ok)
    assert.matches("strict_load", err)
    local bad = ckpt.dict({ { "w", spore.tensor({ 1, 2 }, "int32") } })
    ok, err = pcall(spore.load_param_into_net, net_of({ P("w", { 2 }) }), bad)
    assert.is_false(ok)
    assert.matches("incompatible", err)
  end)

  it("rename rules (patterns and functions) apply in order; nil drops", function()
    local d = ckpt.dict({ { "backbone.conv.weight", spore.ones({ 2 }) }, { "backbone.head.w", spore.ones({ 3 }) },
      { "module.x", spore.ones({ 1 }) } })
    local net = net_of({ P("conv.weight", { 2 }), P("x", { 1 }) })
    local pnl, cnl, rep = spore.load_param_into_net(net, d, { rename = {
      { "^backbone%.", "" },
      function(n) if n:match("^head%.") then return nil end return n end,
      { "^module%.", "" } } })
    assert.same({}, pnl)
    assert.same({}, cnl)
    assert.equal(1, net.params[1].data:get({ 2 }))
    assert.equal(1, rep:counts().dropped)
  end)

  it("two checkpoint keys renamed onto one name is an error naming both keys and the name (issue #8, b2)", function()
    local d = ckpt.dict({ { "a.w", spore.full({ 2 }, 1) }, { "b.w", spore.full({ 2 }, 2) }, { "c", spore.ones({ 1 }) } })
    local net = net_of({ P("w", { 2 }), P("c", { 1 }) })
    local ok, err = pcall(spore.load_param_into_net, net, d, { rename = { { "^%a+%.", "" } } })
    assert.is_false(ok)
    assert.matches("checkpoint keys 'a%.w' and 'b%.w' both map to 'w' after renaming", err)
    assert.same({ 0, 0 }, net.params[1].data:totable()) -- nothing was loaded
    -- a key renamed onto a key that is already there (unrenamed)
    local d2 = ckpt.dict({ { "w", spore.ones({ 2 }) }, { "old.w", spore.ones({ 2 }) } })
    ok, err = pcall(spore.load_param_into_net, net_of({ P("w", { 2 }) }), d2, { rename = { { "^old%.", "" } } })
    assert.is_false(ok)
    assert.matches("'w' and 'old%.w' both map to 'w'", err)
    -- also through load_checkpoint{net=, rename=}, and when the shared name is not in the net
    local d3 = ckpt.dict({ { "x.q", spore.ones({ 1 }) }, { "y.q", spore.ones({ 1 }) } })
    ok, err = pcall(spore.load_param_into_net, net_of({ P("w", { 2 }) }), d3, { rename = { { "^%a%.", "" } } })
    assert.is_false(ok)
    assert.matches("'x%.q' and 'y%.q' both map to 'q'", err)
  end)

  it("prefix fallback loads network.X for X (MindSpore), never moments.X into X", function()
    local p = fixture("ms_small.ckpt")
    if not p then return pending("SKIPPED") end
    local src = spore.load_checkpoint(p)
    local wrapped = {}
    for _, k in ipairs(ckpt.keys(src)) do wrapped[#wrapped + 1] = { "network." .. k, src[k] } end
    local net = small_net()
    local pnl, _, rep = spore.load_param_into_net(net, ckpt.dict(wrapped))
    assert.same({}, pnl)
    assert.equal("network.", rep.prefix)
    -- mindcv #697: the head was dropped to fine-tune, the moments of the head remain
    local mp = fixture("ms_momentum.ckpt")
    local d = spore.load_checkpoint(mp, { filter_prefix = { "fc." } })
    assert.is_nil(d["fc.weight"]); assert.is_not_nil(d["moments.fc.weight"])
    local net2 = small_net()
    local pnl2, _, rep2 = spore.load_param_into_net(net2, d)
    assert.same({ "fc.weight", "fc.bias" }, pnl2)
    assert.is_nil(rep2.prefix)
    assert.equal(0, net2.params[7].data:sum(), "fc.weight must stay untouched")
    -- the same through a wrapper prefix: network.moments.fc.weight never feeds fc.weight
    local wrapped2 = {}
    for _, k in ipairs(ckpt.keys(d)) do wrapped2[#wrapped2 + 1] = { "network." .. k, d[k] } end
    local net3 = small_net()
    local pnl3, _, rep3 = spore.load_param_into_net(net3, ckpt.dict(wrapped2))
    assert.equal("network.", rep3.prefix)
    assert.same({ "fc.weight", "fc.bias" }, pnl3)
    assert.equal(0, net3.params[7].data:sum())
    local only_state = ckpt.dict({ { "network.moments.fc.bias", spore.ones({ 5 }) } })
    local net4 = small_net()
    local _, _, rep4 = spore.load_param_into_net(net4, only_state)
    assert.is_nil(rep4.prefix)
    assert.equal(0, net4.params[8].data:sum())
  end)

  it("an optimizer loads weights and its state (ms_momentum.ckpt)", function()
    local mp = fixture("ms_momentum.ckpt")
    if not mp then return pending("SKIPPED") end
    local net = small_net()
    local opt = momentum_opt(net)
    local d = spore.load_checkpoint(mp)
    local pnl, cnl = spore.load_param_into_net(opt, d)
    assert.same({}, pnl)
    assert.same({}, cnl)
    assert.near(0.9, opt.params[10].data:item(), 1e-7)
    assert.equal(2, opt.params[#opt.params].data:get({ 1 }))
    assert.is_true(net.params[1].data:sum() ~= 0)
  end)
end)
