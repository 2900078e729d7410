-- models_zoo_names_spec.lua — spore's resnet18/34/50 against an independent oracle: the
-- parameter names, shapes, requires_grad and order, every BatchNorm2d's eps/momentum and
-- every Conv2d's pad_mode/padding/stride, as MindSpore 2.10 reports them for the model
-- zoo's own official/cv/ResNet/src/resnet.py (spec/fixtures/ms_resnet_names.json, written
-- by scripts/gen/gen_resnet_names.py).
local H = spec_helper or require("spec.helper")
local json = require("spore.json")
local spore = require("spore")

local path = assert(H.local_fixture("ms_resnet_names.json"))
local fx = assert(json.decode(H.read_file(path)))

-- the module at a dotted cell name ("layer1.0.down_sample_layer.1"), or nil
local function cell(net, name)
  local m = net
  for part in name:gmatch("[^.]+") do
    m = m and m._modules and m[part]
    if m == nil then return nil end
  end
  return m
end

-- {name = module} of every module of a class, walked through the module tree
local function modules_of(net, class)
  local out = {}
  local function walk(m, prefix)
    for _, e in ipairs(m:children()) do
      local n = prefix .. e[1]
      if getmetatable(e[2]).__name == class then out[n] = e[2] end
      walk(e[2], n .. ".")
    end
  end
  walk(net, "")
  return out
end

local function keys(t)
  local r = {}
  for k in pairs(t) do r[#r + 1] = k end
  table.sort(r)
  return r
end

describe("the zoo oracle fixture", function()
  it("came from MindSpore running the zoo's resnet.py", function()
    assert.equal("2.10.0", fx.versions.mindspore)
    assert.truthy(fx.source:find("official/cv/ResNet/src/resnet.py", 1, true))
    for _, n in ipairs({ "resnet18", "resnet34", "resnet50" }) do assert.is_table(fx.nets[n]) end
  end)
end)

for _, name in ipairs({ "resnet18", "resnet34", "resnet50" }) do
  local ref = fx.nets[name]
  describe(name .. "{class_num=" .. ref.class_num .. "} vs MindSpore", function()
    local net = spore.models[name] { class_num = ref.class_num }

    it("has MindSpore's parameters, entry by entry: name, shape, requires_grad, order", function()
      local pn = net:parameters_and_names()
      for i = 1, math.max(#pn, #ref.params) do
        local e, r = pn[i], ref.params[i]
        local where = ("%s entry %d"):format(name, i)
        assert(e, where .. ": spore ends early; MindSpore has " .. (r and r[1] or "?"))
        assert(r, where .. ": spore has an extra " .. e[1])
        assert.equal(r[1], e[1], where)
        assert.same(r[2], e[2].data:shape(), where .. " " .. r[1] .. " shape")
        assert.equal(r[3], e[2].requires_grad, where .. " " .. r[1] .. " requires_grad")
      end
      assert.equal(#ref.params, #pn)
    end)

    it("has MindSpore's BatchNorm2d cells with the same eps and momentum", function()
      local mine = modules_of(net, "BatchNorm2d")
      assert.same(keys(ref.bn), keys(mine))
      for cname, r in pairs(ref.bn) do
        local bn = assert(cell(net, cname), cname)
        assert.equal(mine[cname], bn)
        assert.near(r[1], bn.eps, 1e-15, cname .. ".eps")
        assert.near(r[2], bn.momentum, 1e-12, cname .. ".momentum")
      end
    end)

    it("has MindSpore's Conv2d cells with the same pad_mode, padding and stride", function()
      local mine = modules_of(net, "Conv2d")
      assert.same(keys(ref.conv), keys(mine))
      for cname, r in pairs(ref.conv) do
        local c = assert(cell(net, cname), cname)
        assert.equal(r[1], c.pad_mode, cname .. ".pad_mode")
        assert.same(r[2], c.padding, cname .. ".padding")
        assert.same(r[3], c.stride, cname .. ".stride")
      end
    end)
  end)
end
