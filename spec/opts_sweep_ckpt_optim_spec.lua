-- opts_sweep_ckpt_optim_spec.lua — every options table of the checkpoint API and the
-- optimizers: a misspelt key is an error naming it (and the nearest known key), a MindSpore
-- key spore does not implement is refused by name, and the MindSpore spellings are accepted.
require("spec.helper")
local spore = require("spore")
local nn, optim, ckpt = spore.nn, spore.optim, require("spore.ckpt")
local H = spec_helper

local function P(name) local p = nn.Parameter(spore.tensor({ 1, 2 }), name, true); p.grad = spore.tensor({ 0, 0 }); return p end

local function fails_naming(f, key, near)
  local ok, err = pcall(f)
  assert.is_false(ok, "accepted the misspelt key '" .. key .. "'")
  err = tostring(err)
  assert.truthy(err:find("'" .. key .. "'", 1, true), "error does not name '" .. key .. "': " .. err)
  if near then assert.truthy(err:find("did you mean '" .. near .. "'", 1, true), "no suggestion '" .. near .. "': " .. err) end
  return err
end
local function refused(f, key)
  local err = fails_naming(f, key)
  assert.truthy(err:find("MindSpore's, but spore does not implement it", 1, true), err)
end

describe("options sweep: spore.ckpt and spore.optim", function()
  local dir, path
  setup(function()
    dir = H.tmpdir()
    path = dir .. "/w.ckpt"
    ckpt.save_checkpoint(ckpt.dict({ { "w", spore.tensor({ 1, 2 }) } }), path)
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("load_checkpoint", function()
    fails_naming(function() ckpt.load_checkpoint(path, { strict_laod = true }) end, "strict_laod", "strict_load")
    fails_naming(function() ckpt.load_checkpoint(path, { filter_prefx = "x" }) end, "filter_prefx", "filter_prefix")
    fails_naming(function() spore.load_checkpoint(path, { crc_chek = true }) end, "crc_chek", "crc_check")
    refused(function() ckpt.load_checkpoint(path, { remove_redundancy = true }) end, "remove_redundancy")
    fails_naming(function() ckpt.load_checkpoint(path, { format = "onnx" }) end, "format")
    fails_naming(function() ckpt.load_checkpoint(path, { strict_load = "yes" }) end, "strict_load")
    local d = ckpt.load_checkpoint(path, { strict_load = false, filter_prefix = "zz", specify_prefix = "w",
      crc_check = false, format = "ckpt" })
    assert.is_not_nil(d.w)
  end)

  it("load_param_into_net (and load_checkpoint{net=})", function()
    local net = nn.Dense(2, 1)
    local d = ckpt.dict({ { "weight", spore.tensor({ { 1, 2 } }) }, { "bias", spore.tensor({ 0.5 }) } })
    fails_naming(function() ckpt.load_param_into_net(net, d, { strictload = true }) end, "strictload", "strict_load")
    refused(function() ckpt.load_param_into_net(net, d, { remove_redundancy = false }) end, "remove_redundancy")
    fails_naming(function() ckpt.load_checkpoint(path, { net = net, on_shape_mismach = "skip" }) end, "on_shape_mismach",
      "on_shape_mismatch")
    local pnl = ckpt.load_param_into_net(net, d, { strict_load = true })
    assert.same({}, pnl)
  end)

  it("load_param_into_net warns as MindSpore when parameters of the net are not loaded", function()
    local net = nn.Dense(2, 1)
    local lines = {}
    ckpt.load_param_into_net(net, ckpt.dict({ { "weight", spore.tensor({ { 1, 2 } }) } }),
      { warn = function(l) lines[#lines + 1] = l end })
    assert.same({ "For 'load_param_into_net', 1 parameters in the 'net' are not loaded, because they are not in the "
      .. "'parameter_dict', please check whether the network structure is consistent when training and loading "
      .. "checkpoint.", "['bias'] are not loaded." }, lines)
    -- nothing loaded at all: both lines, every name
    lines = {}
    local saved = ckpt.warn
    ckpt.warn = function(l) lines[#lines + 1] = l end
    ckpt.load_param_into_net(net, ckpt.dict({ { "other", spore.tensor({ 1 }) } }))
    ckpt.warn = saved
    assert.equal(2, #lines)
    assert.truthy(lines[1]:find("2 parameters in the 'net' are not loaded", 1, true))
    assert.equal("['weight', 'bias'] are not loaded.", lines[2])
    -- everything loaded: no warning
    lines = {}
    ckpt.load_param_into_net(net, ckpt.dict({ { "weight", spore.tensor({ { 1, 2 } }) }, { "bias", spore.tensor({ 0 }) } }),
      { warn = function(l) lines[#lines + 1] = l end })
    assert.same({}, lines)
  end)

  it("save_checkpoint, read_raw, write_raw", function()
    local obj = ckpt.dict({ { "w", spore.tensor({ 1 }) } })
    fails_naming(function() ckpt.save_checkpoint(obj, dir .. "/a", { apend_dict = {} }) end, "apend_dict", "append_dict")
    fails_naming(function() ckpt.save_checkpoint(obj, dir .. "/a", { enc_keys = "k" }) end, "enc_keys", "enc_key")
    refused(function() ckpt.save_checkpoint(obj, dir .. "/a", { incremental = true }) end, "incremental")
    refused(function() ckpt.save_checkpoint(obj, dir .. "/a", { global_step_num = 3 }) end, "global_step_num")
    refused(function() ckpt.save_checkpoint(obj, dir .. "/a", { remove_redundancy = true }) end, "remove_redundancy")
    fails_naming(function() ckpt.save_checkpoint(obj, dir .. "/a", { format = "pth" }) end, "format")
    ckpt.save_checkpoint(obj, dir .. "/b", { integrated_save = true, async_save = false, choice_func = function() return true end })
    fails_naming(function() ckpt.read_raw(path, { crc_chek = true }) end, "crc_chek", "crc_check")
    fails_naming(function() ckpt.write_raw(dir .. "/c.ckpt", { { name = "w", tensor = spore.tensor({ 1 }) } }, { fromat = "ckpt" }) end,
      "fromat", "format")
  end)

  it("the optimizers and their groups", function()
    fails_naming(function() optim.Momentum({ P("w") }, 0.1, 0.9, { use_nestrov = true }) end, "use_nestrov", "use_nesterov")
    fails_naming(function() optim.Momentum({ P("w") }, 0.1, 0.9, { weight_decay = "0.1" }) end, "weight_decay")
    fails_naming(function() optim.SGD({ P("w") }, 0.1, { dampenning = 0.1 }) end, "dampenning", "dampening")
    fails_naming(function() optim.Adam({ P("w") }, 0.1, { use_amsgard = true }) end, "use_amsgard", "use_amsgrad")
    refused(function() optim.Adam({ P("w") }, 0.1, { use_locking = true }) end, "use_locking")
    refused(function() optim.Adam({ P("w") }, 0.1, { use_offload = true }) end, "use_offload")
    fails_naming(function() optim.AdamWeightDecay({ P("w") }, 0.1, { weight_decy = 0.1 }) end, "weight_decy", "weight_decay")
    fails_naming(function() optim.AdamWeightDecay({ P("w") }, 0.1, { loss_scale = 2 }) end, "loss_scale")
    for _, make in ipairs({
      function(g) return optim.Momentum(g, 0.1, 0.9) end,
      function(g) return optim.SGD(g, 0.1) end,
      function(g) return optim.Adam(g, 0.1) end,
      function(g) return optim.AdamWeightDecay(g, 0.1) end,
    }) do
      fails_naming(function() make({ { params = { P("w") }, weight_dacay = 0.1 } }) end, "weight_dacay", "weight_decay")
      fails_naming(function() make({ { params = { P("w") }, learning_rate = 0.1 } }) end, "learning_rate")
      fails_naming(function() make({ { params = { P("w") }, grad_centralisation = true } }) end, "grad_centralisation",
        "grad_centralization")
      local a, b = P("a"), P("b")
      fails_naming(function() make({ { params = { a } }, { params = { b } }, { order_params = { a, b }, lr = 0.1 } }) end,
        "order_params")
      local o = make({ { params = { a }, lr = 0.05, weight_decay = 0.01 }, { params = { b } }, { order_params = { b, a } } })
      assert.equal(b, o.params[1])
    end
    fails_naming(function() optim.Momentum({ { params = { P("w") }, grad_centralization = 1 } }, 0.1, 0.9) end,
      "grad_centralization")
  end)
end)

describe("checkpoint calls with MindSpore's positional arguments", function()
  it("load_checkpoint(f, net) loads the net; arguments past the options table are errors", function()
    local dir = H.tmpdir()
    local f = dir .. "/n.ckpt"
    spore.manual_seed(1)
    local a = spore.models.lenet5()
    spore.save_checkpoint(a, f)
    spore.manual_seed(2)
    local b = spore.models.lenet5()
    assert.are_not.same(a.fc3.weight.data:totable(), b.fc3.weight.data:totable())
    spore.load_checkpoint(f, b)
    assert.same(a.fc3.weight.data:totable(), b.fc3.weight.data:totable())
    local function fails(fn, s)
      local ok, err = pcall(fn)
      assert.is_false(ok); assert.truthy(tostring(err):find(s, 1, true), tostring(err))
    end
    fails(function() spore.load_checkpoint(f, { net = b }, true) end, "load_checkpoint takes (path, {net =")
    fails(function() spore.load_param_into_net(b, spore.load_checkpoint(f), {}, true) end, "load_param_into_net takes")
    fails(function() spore.save_checkpoint(b, dir .. "/m.ckpt", {}, false) end, "save_checkpoint takes")
    fails(function() spore.load_param_into_net(b, spore.load_checkpoint(f), true) end, "options must be a table")
  end)
end)
