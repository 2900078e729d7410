-- opts_sweep_nn_models_spec.lua — the option tables of the model constructors, the
-- table forms of the nn losses, Dropout and the initializers, and the modules that take no
-- arguments: a misspelt key is an error naming it (and the nearest known key), a MindSpore
-- key spore does not implement is refused by name, and MindSpore's spellings are accepted.
require("spec.helper")
local spore = require("spore")
local nn = spore.nn

local function fails_with(f, ...)
  local ok, err = pcall(f)
  assert.is_false(ok, "accepted: expected an error containing " .. table.concat({ ... }, " / "))
  err = tostring(err)
  for _, s in ipairs({ ... }) do assert.truthy(err:find(s, 1, true), "'" .. s .. "' not in: " .. err) end
end

describe("options sweep: spore.models", function()
  it("resnet18/34/50 check their keys and take the class count once", function()
    for _, name in ipairs({ "resnet18", "resnet34", "resnet50" }) do
      fails_with(function() return spore.models[name] { class_nun = 10 } end,
        "spore.models." .. name, "'class_nun'", "did you mean 'class_num'")
      fails_with(function() return spore.models[name] { class_num = 10, num_classes = 5 } end, "once")
    end
    local net = spore.models.resnet18 { num_classes = 5 }
    assert.same({ 5, 512 }, net.end_point.weight.data:shape())
    assert.same({ 7, 512 }, spore.models.resnet18 { class_num = 7 }.end_point.weight.data:shape())
  end)
  it("lenet5 checks its keys and refuses include_top by name", function()
    fails_with(function() return spore.models.lenet5 { num_clas = 5 } end, "'num_clas'", "did you mean 'num_class'")
    fails_with(function() return spore.models.lenet5 { include_top = false } end, "'include_top'",
      "spore does not implement it")
    fails_with(function() return spore.models.lenet5 { num_class = 5, class_num = 5 } end, "once")
    assert.same({ 5, 84 }, spore.models.lenet5 { num_class = 5 }.fc3.weight.data:shape())
    assert.same({ 6, 3, 5, 5 }, spore.models.lenet5 { num_channel = 3 }.conv1.weight.data:shape())
  end)
end)

describe("options sweep: spore.nn table forms", function()
  it("SoftmaxCrossEntropyWithLogits{...} checks its keys", function()
    fails_with(function() return nn.SoftmaxCrossEntropyWithLogits { sparse = true, reducton = "mean" } end,
      "SoftmaxCrossEntropyWithLogits", "'reducton'", "did you mean 'reduction'")
    fails_with(function() return nn.SoftmaxCrossEntropyWithLogits { sparse = "yes" } end, "'sparse'", "boolean")
    local l = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "sum" }
    assert.is_true(l.sparse); assert.equal("sum", l.reduction)
  end)
  it("Dropout{...}: p or keep_prob, not both; dtype refused", function()
    fails_with(function() return nn.Dropout { keep_porb = 0.9 } end, "'keep_porb'", "did you mean 'keep_prob'")
    fails_with(function() return nn.Dropout { p = 0.1, keep_prob = 0.9 } end, "not both")
    fails_with(function() return nn.Dropout { dtype = "float16" } end, "'dtype'", "spore does not implement it")
    assert.near(0.1, nn.Dropout { p = 0.1 }.p, 1e-12)
    assert.near(0.1, nn.Dropout { keep_prob = 0.9 }.p, 1e-12)
    assert.near(0.2, nn.Dropout(0.8).p, 1e-12)
  end)
  it("initializers take MindSpore's names in a table", function()
    fails_with(function() return nn.Normal { sigam = 0.02 } end, "Normal", "'sigam'", "did you mean 'sigma'")
    fails_with(function() return nn.HeUniform { mdoe = "fan_out" } end, "'mdoe'", "did you mean 'mode'")
    fails_with(function() return nn.Uniform { scale = "big" } end, "'scale'", "number")
    assert.equal(0.02, nn.Normal { sigma = 0.02 }.sigma)
    assert.equal(0.5, nn.Normal { sigma = 0.02, mean = 0.5 }.mean)
    assert.equal("fan_out", nn.HeNormal { mode = "fan_out" }.mode)
    assert.equal(0.3, nn.TruncatedNormal { sigma = 0.3 }.sigma)
  end)
  it("modules with no options refuse arguments instead of dropping them", function()
    fails_with(function() return nn.Flatten { start_dim = 2 } end, "Flatten takes no arguments", "'start_dim'")
    fails_with(function() return nn.ReLU(1) end, "ReLU takes no arguments")
    local C = nn.class("NoInitNet")
    fails_with(function() return C { hidden = 3 } end, "NoInitNet takes no arguments", "'hidden'")
    assert.equal("Flatten()", tostring(nn.Flatten()))
    assert.equal("ReLU()", tostring(nn.ReLU()))
  end)
end)
