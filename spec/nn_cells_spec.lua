-- nn_cells_spec.lua — networks as MindSpore's Cell: assigning a module to a field registers
-- it (a head swap replaces the child in place), and cells_and_names, get_parameters,
-- trainable_params, untrainable_params, insert_param_to_cell and insert_child_to_cell give
-- what MindSpore 2.10 gives for the same network (names recorded in
-- spec/fixtures/ms_optim_fidelity.json "cells" by scripts/gen/gen_ms_fidelity_optim.py).
require("spec.helper")
local spore = require("spore")
local nn, optim, ckpt = spore.nn, spore.optim, require("spore.ckpt")
local json = require("dkjson")

local fh = assert(io.open(assert(spec_helper.local_fixture("ms_optim_fidelity.json")), "rb"))
local MS = json.decode(fh:read("*a")).cells
fh:close()

local Block = nn.class("Block")
function Block:__init()
  self.conv = nn.Conv2d(3, 4, 3, { has_bias = true })
  self.bn = nn.BatchNorm2d(4)
end
function Block:forward(x) return self.bn:forward(self.conv:forward(x)) end

local Net = nn.class("Net")
function Net:__init()
  self.body = Block()
  self.relu = nn.ReLU()
  self.fc = nn.Dense(4, 2)
  self.out = nn.Dense(2, 2)
end
function Net:forward(x) return x end

local function names_of(list)
  local r = {}
  for i, e in ipairs(list) do r[i] = type(e) == "table" and e.__parameter and e.name or e[1] end
  return r
end

describe("networks as MindSpore cells", function()
  it("fields assigned in __init are registered children, in order", function()
    local net = Net()
    assert.same({ "body", "relu", "fc", "out" }, names_of(net:children()))
    assert.equal(net.fc, net:name_cells().fc)
  end)

  it("a head swap by assignment replaces the child in place; parameters, the optimizer and the checkpoint see it",
    function()
      local net = Net()
      local old = net.fc
      net.fc = nn.Dense(4, 7)
      net.extra = nn.Dense(7, 3)
      assert.are_not.equal(old, net.fc)
      assert.same(MS.fc_weight_shape, net.fc.weight.data:shape())
      assert.same(MS.cells_and_names, names_of(net:cells_and_names()))
      assert.same(MS.parameters_and_names, names_of(net:parameters_and_names()))
      assert.same(MS.param_names, names_of(net:get_parameters()))
      assert.same(MS.trainable, names_of(net:trainable_params()))
      assert.same(MS.untrainable, names_of(net:untrainable_params()))
      assert.same(MS.own_params_body, names_of(net.body:get_parameters(false)))
      local opt = optim.Momentum(net:trainable_params(), 0.1, 0.9)
      assert.same(MS.optimizer_params, names_of(opt.params))
      local tmp = os.tmpname()
      ckpt.save_checkpoint(net, tmp .. ".ckpt")
      local back = ckpt.load_checkpoint(tmp .. ".ckpt")
      os.remove(tmp .. ".ckpt"); os.remove(tmp)
      assert.same(MS.saved, ckpt.keys(back))
      assert.same({ 7, 4 }, back["fc.weight"]:shape())
    end)

  it("a Tensor assigned to a parameter field replaces its data (MindSpore's set_data)", function()
    local d = nn.Dense(2, 2)
    local p = d.weight
    d.weight = spore.tensor({ { 1, 2 }, { 3, 4 } })
    assert.equal(p, d.weight)
    assert.same({ 1, 2, 3, 4 }, d.weight.data:flat())
    d.bias = nn.Parameter(spore.zeros({ 2 }), "b2", true)
    assert.same({ "weight", "bias" }, names_of(d:parameters_and_names()))
  end)

  it("refuses to turn a child or a parameter into something else", function()
    local net = Net()
    local ok, err = pcall(function() net.fc = 3 end)
    assert.is_false(ok); assert.truthy(tostring(err):find("child module 'fc'", 1, true), err)
    ok, err = pcall(function() net.fc.weight = "x" end)
    assert.is_false(ok); assert.truthy(tostring(err):find("parameter 'weight'", 1, true), err)
  end)

  it("insert_param_to_cell and insert_child_to_cell check names as MindSpore", function()
    local net = Net()
    local p = nn.Parameter(spore.zeros({ 2 }), "scale", true)
    net:insert_param_to_cell("scale", p)
    assert.equal(p, net.scale)
    assert.equal("scale", net:parameters_and_names()[1][1]) -- own parameters come first
    local function fails(f, text)
      local ok, err = pcall(f)
      assert.is_false(ok); assert.truthy(tostring(err):find(text, 1, true), err)
    end
    fails(function() net:insert_param_to_cell("", p) end, "should not be None")
    fails(function() net:insert_param_to_cell("a.b", p) end, "should not contain '.'")
    fails(function() net:insert_param_to_cell("fc", p) end, "the fc parameter already exists")
    fails(function() net:insert_param_to_cell("w2", spore.zeros({ 2 })) end, "must be a Parameter")
    net:insert_param_to_cell("a.b", nn.Parameter(spore.zeros({ 1 }), "ab", true), false)
    net:insert_child_to_cell("head2", nn.Dense(2, 2))
    assert.equal("head2", net:children()[#net:children()][1])
    fails(function() net:insert_child_to_cell("x.y", nn.Dense(2, 2)) end, "contain no '.'")
    fails(function() net:insert_child_to_cell("scale", nn.Dense(2, 2)) end, "the scale child cell already exists")
  end)
end)
