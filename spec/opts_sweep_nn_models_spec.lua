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
  it("Conv2d, Dense, BatchNorm2d: option tables checked; MindSpore keys at their defaults only", function()
    fails_with(function() return nn.Conv2d(1, 2, 3, { pad_mod = "same" }) end, "Conv2d", "'pad_mod'", "did you mean 'pad_mode'")
    fails_with(function() return nn.Conv2d(1, 2, 3, { data_format = "NHWC" }) end, "'data_format'", "NCHW")
    fails_with(function() return nn.Conv2d(1, 2, 3, { has_bias = 1 }) end, "'has_bias'", "boolean")
    local c = nn.Conv2d(1, 2, 3, { data_format = "NCHW", dtype = "float32", stride = { 2, 1 }, pad_mode = "valid" })
    assert.same({ 2, 1 }, c.stride); assert.equal("valid", c.pad_mode)
    assert.same({ 2, 2 }, nn.Conv2d(1, 2, 3, { 2, 2 }).stride) -- a pair is the stride, not options
    fails_with(function() return nn.Dense(1, 2, { has_bais = false }) end, "Dense", "'has_bais'", "did you mean 'has_bias'")
    fails_with(function() return nn.Dense(1, 2, { activation = "relu" }) end, "'activation'", "spore does not implement it")
    fails_with(function() return nn.Dense(1, 2, { dtype = "float16" }) end, "'dtype'", "float32")
    assert.is_false(nn.Dense(1, 2, { has_bias = false }).has_bias)
    -- an initializer spec in third place is the weight_init, not an options table
    spore.manual_seed(3); local a = nn.Dense(4, 2, nn.Normal(0.1))
    spore.manual_seed(3); local b = nn.Dense(4, 2, { weight_init = nn.Normal(0.1) })
    spore.manual_seed(3); local c2 = nn.Dense(4, 2)
    assert.same(a.weight.data:totable(), b.weight.data:totable())
    assert.are_not.same(a.weight.data:totable(), c2.weight.data:totable())
    fails_with(function() return nn.BatchNorm2d(2, { momentun = 0.9 }) end, "BatchNorm2d", "'momentun'",
      "did you mean 'momentum'")
    assert.equal(0.99, nn.BatchNorm2d(2, { momentum = 0.99 }).momentum)
    fails_with(function() return nn.Conv2d(1, 2, 3, { stride = 2 }, "valid") end, "Conv2d: arguments after the options")
    fails_with(function() return nn.Dense(1, 2, { has_bias = true }, nn.Normal(0.1)) end, "Dense: arguments after")
    fails_with(function() return nn.BatchNorm2d(2, { eps = 1e-3 }, 0.99) end, "BatchNorm2d: arguments after")
    fails_with(function() return nn.MaxPool2d({ kernel_size = 2 }, 2) end, "MaxPool2d: arguments after")
  end)
  it("MaxPool2d and AvgPool2d: option tables checked; MindSpore keys at their defaults only", function()
    fails_with(function() return nn.MaxPool2d { kernel_size = 2, strid = 2 } end, "MaxPool2d", "'strid'",
      "did you mean 'stride'")
    fails_with(function() return nn.MaxPool2d { kernel_size = 2, ceil_mode = true } end, "'ceil_mode'", "false")
    fails_with(function() return nn.MaxPool2d { kernel_size = 2, return_indices = true } end, "'return_indices'")
    fails_with(function() return nn.MaxPool2d { kernel_size = 2, count_include_pad = false } end,
      "unknown option 'count_include_pad'")
    fails_with(function() return nn.AvgPool2d { kernel_size = 2, divisor_override = 3 } end, "'divisor_override'",
      "spore does not implement it")
    fails_with(function() return nn.AvgPool2d { kernel_size = 2, count_include_pad = "no" } end, "'count_include_pad'",
      "boolean")
    -- count_include_pad (MindSpore's default true) decides the divisor with pad_mode "pad":
    -- a 3x3 mean of ones at a corner with padding 1 is 4/9 when the padding counts, 1 when not
    local x = spore.ones({ 1, 1, 3, 3 })
    local incl = nn.AvgPool2d { kernel_size = 3, stride = 1, pad_mode = "pad", padding = 1 }(x)
    local excl = nn.AvgPool2d { kernel_size = 3, stride = 1, pad_mode = "pad", padding = 1, count_include_pad = false }(x)
    assert.near(4 / 9, incl:get { 1, 1, 1, 1 }, 1e-6)
    assert.near(6 / 9, incl:get { 1, 1, 1, 2 }, 1e-6)
    assert.near(1, incl:get { 1, 1, 2, 2 }, 1e-6)
    assert.near(1, excl:get { 1, 1, 1, 1 }, 1e-6)
    -- and the backward divides by the same count: d(sum of outputs)/d(corner) = 4 windows
    local pi = nn.AvgPool2d { kernel_size = 3, stride = 1, pad_mode = "pad", padding = 1 }
    pi(x)
    assert.near(4 / 9, pi:backward(x, spore.ones({ 1, 1, 3, 3 })):get { 1, 1, 1, 1 }, 1e-6)
    local pe = nn.AvgPool2d { kernel_size = 3, stride = 1, pad_mode = "pad", padding = 1, count_include_pad = false }
    pe(x)
    assert.near(1 / 4 + 1 / 6 + 1 / 6 + 1 / 9, pe:backward(x, spore.ones({ 1, 1, 3, 3 })):get { 1, 1, 1, 1 }, 1e-6)
    -- "same" never counts its padding
    assert.near(1, nn.AvgPool2d { kernel_size = 3, stride = 1, pad_mode = "same" }(x):get { 1, 1, 1, 1 }, 1e-6)
    fails_with(function() return nn.AvgPool2d { kernel_size = 2, pad_mode = "full" } end, "AvgPool2d: pad_mode")
    local p = nn.MaxPool2d { kernel_size = 3, stride = 2, pad_mode = "same", ceil_mode = false, data_format = "NCHW" }
    assert.same({ 3, 3 }, p.kernel_size); assert.same({ 2, 2 }, p.stride); assert.equal("same", p.pad_mode)
  end)
  it("SequentialCell takes one list or separate cells, and only cells", function()
    fails_with(function() return nn.SequentialCell({ nn.ReLU() }, { bogus = 1 }) end, "not both")
    fails_with(function() return nn.SequentialCell({ nn.ReLU(), 3 }) end, "cell 2 is a number")
    fails_with(function() return nn.SequentialCell({ nn.ReLU(), act = nn.ReLU() }) end, "unexpected key 'act'")
    assert.equal(2, nn.SequentialCell({ nn.ReLU(), nn.Flatten() }).n)
    assert.equal(2, nn.SequentialCell(nn.ReLU(), nn.Flatten()).n)
  end)
end)

describe("datasets: MindSpore's chained pipeline calls", function()
  it("are refused by name with the option that does the job", function()
    local ds = spore.data.from_tensors(spore.zeros(4, 1, 8, 8), spore.zeros({ 4 }, "int32"), { batch = 2 })
    fails_with(function() return ds:batch(32, true) end, "batch() is MindSpore's pipeline call", "{batch = N")
    fails_with(function() return ds:map({}, { input_columns = "image" }) end, "map()", "transforms =")
    fails_with(function() return ds:shuffle(100) end, "shuffle()", "{shuffle = true")
    fails_with(function() return ds["repeat"](ds, 2) end, "repeat()", "{repeat = N}")
    fails_with(function() return ds:create_dict_iterator() end, "create_dict_iterator()", "ds:batches()")
    fails_with(function() return ds:create_tuple_iterator { num_epochs = 1 } end, "takes no options")
    local n = 0
    for images, labels in ds:create_tuple_iterator() do n = n + 1; assert.same({ 2, 1, 8, 8 }, images:shape()) end
    assert.equal(2, n)
    assert.equal(2, ds:get_batch_size())
    assert.equal(2, ds:num_batches())
  end)
end)
