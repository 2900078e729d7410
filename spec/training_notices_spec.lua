-- training_notices_spec.lua — issue #13, "training that notices" and the small items of
-- defect 9: a NaN/Inf loss or parameter stops Model:train with an error naming the step and
-- the first bad parameter (whatever callbacks or --quiet say) unless allow_nonfinite;
-- ModelCheckpoint never saves non-finite weights unless allowed; train.lua --steps 0 is a
-- usage error; eval on an empty dataset is an error; inspect --json is valid UTF-8; nil
-- arguments give errors naming the argument; Conv2d refuses stride 0.
local spore = require("spore")
local H = spec_helper
local data, train, nn = spore.data, spore.train, spore.nn

local function nonfinite(v) return v ~= v or v == math.huge or v == -math.huge end

-- 64 deterministic random 32x32 images (HWC float32) with labels 0..9, batches of 8
local function dataset(n)
  spore.manual_seed(7)
  n = n or 64
  local imgs = spore.randn({ n, 32, 32, 1 })
  local l = {}
  for i = 1, n do l[i] = (i - 1) % 10 end
  local labs = spore.tensor(l, "int32")
  return data.from_tensors(imgs, labs, { batch = 8, shuffle = false, transforms = { data.vision.HWC2CHW() },
    name = "noise" })
end

local function lenet(lr)
  spore.manual_seed(1)
  local net = spore.models.lenet5()
  local opt = spore.optim.Momentum(net:trainable_params(), lr or 0.01, 0.9)
  local loss = nn.SoftmaxCrossEntropyWithLogits{ sparse = true, reduction = "mean" }
  return net, opt, loss
end

local function param(net, name)
  for _, kv in ipairs(net:parameters_and_names()) do if kv[1] == name then return kv[2] end end
  error("no parameter " .. name)
end

local function ckpt_files(dir)
  local out = {}
  for f in require("lfs").dir(dir) do if f:match("%.ckpt$") then out[#out + 1] = f end end
  table.sort(out)
  return out
end

describe("Model:train notices non-finite values", function()
  it("a NaN or Inf loss stops training at that step, before the optimizer step", function()
    for _, case in ipairs({ { 0 / 0, "nan" }, { math.huge, "inf" }, { -math.huge, "-inf" } }) do
      local net, opt, ce = lenet()
      local calls = 0
      local lossf = { forward = function(_, lg, y)
        calls = calls + 1
        local v = ce:forward(lg, y)
        return calls == 3 and case[1] or v
      end, backward = function() return ce:backward() end }
      local model = spore.Model(net, lossf, opt)
      local ok, err = pcall(model.train, model, 2, dataset(), { progress = false })
      assert.is_false(ok)
      assert.equal("step 3: loss is " .. case[2] .. " (epoch 1); training stopped (allow_nonfinite = true trains on)", err)
      assert.equal(3, calls)
      assert.equal(2, opt:global_step()) -- the bad step did not update the weights
      assert.is_nil(spore.Model.first_nonfinite(net, opt))
    end
  end)

  it("an infinite learning rate stops training after step 1, naming the first parameter", function()
    local net, opt, loss = lenet(math.huge)
    local model = spore.Model(net, loss, opt)
    local ok, err = pcall(model.train, model, 1, dataset(), { progress = false })
    assert.is_false(ok)
    assert.matches("^step 1: parameter 'conv1%.weight' is not finite %(epoch 1%)", err)
  end)

  it("names the first bad parameter, not the first parameter (a NaN gradient in fc3.bias at step 5)", function()
    local net, opt, loss = lenet()
    local bias = param(net, "fc3.bias")
    local backward, step = net.backward, 0
    net.backward = function(self, ...)
      local r = backward(self, ...)
      step = step + 1
      if step == 5 then bias.grad:fill_(0 / 0) end
      return r
    end
    local model = spore.Model(net, loss, opt)
    local ok, err = pcall(model.train, model, 2, dataset(), { progress = false })
    assert.is_false(ok)
    assert.matches("^step 5: parameter 'fc3%.bias' is not finite %(epoch 1%)", err)
    assert.is_true(nonfinite(bias.data:sum()))
    assert.is_false(nonfinite(param(net, "fc3.weight").data:sum()))
    assert.equal("fc3.bias", spore.Model.first_nonfinite(net, opt))
  end)

  it("checks everything once more at the end: a frozen parameter gone bad at the last step", function()
    local net = lenet()
    net:freeze("fc3")
    local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
    local loss = nn.SoftmaxCrossEntropyWithLogits{ sparse = true, reduction = "mean" }
    local poison = function(ctx) if ctx.cur_step_num == 3 then param(net, "fc3.bias").data:fill_(math.huge) end end
    local model = spore.Model(net, loss, opt)
    local ok, err = pcall(model.train, model, 1, dataset(), { progress = false, steps = 3, callbacks = { poison } })
    assert.is_false(ok)
    assert.matches("^step 3: parameter 'fc3%.bias' is not finite", err)
  end)

  it("allow_nonfinite = true trains on", function()
    local net, opt, loss = lenet(math.huge)
    local ctx = spore.Model(net, loss, opt):train(2, dataset(), { progress = false, allow_nonfinite = true })
    assert.equal(16, ctx.cur_step_num)
    assert.equal("conv1.weight", spore.Model.first_nonfinite(net, opt))
  end)

  it("validates its options", function()
    local net, opt, loss = lenet()
    local model = spore.Model(net, loss, opt)
    local ds = dataset()
    local ok, err = pcall(model.train, model, 1, ds, { allow_nan = true })
    assert.is_false(ok); assert.matches("Model:train: unknown option 'allow_nan'", err)
    ok, err = pcall(model.train, model, 1, ds, { allow_nonfinite = "yes" })
    assert.is_false(ok); assert.matches("option 'allow_nonfinite' must be a boolean, got string", err)
    ok, err = pcall(model.train, model, 1, ds, { steps = 0 })
    assert.is_false(ok); assert.matches("steps must be a positive integer, got 0", err)
  end)
end)

describe("ModelCheckpoint and non-finite weights", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  -- fc3 frozen (outside the optimizer) and poisoned at step 2, just before the save
  local function run(ckpt_opts, train_opts)
    local net = lenet()
    net:freeze("fc3")
    local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
    local loss = nn.SoftmaxCrossEntropyWithLogits{ sparse = true, reduction = "mean" }
    local poison = function(ctx) if ctx.cur_step_num == 2 then param(net, "fc3.bias").data:fill_(0 / 0) end end
    local cb = train.ModelCheckpoint("x", tmp, train.CheckpointConfig{ save_checkpoint_steps = 2 }, ckpt_opts)
    train_opts.progress, train_opts.steps, train_opts.callbacks = false, 2, { poison, cb }
    return pcall(spore.Model(net, loss, opt).train, spore.Model(net, loss, opt), 1, dataset(), train_opts)
  end

  it("refuses to save them, naming the file, the parameter and the step", function()
    local ok, err = run(nil, {})
    assert.is_false(ok)
    assert.equal("ModelCheckpoint: not saving " .. tmp .. "/x-1_2.ckpt: parameter 'fc3.bias' is not finite (step 2)", err)
    assert.same({}, ckpt_files(tmp))
  end)

  it("saves them when training allows non-finite values, or the callback does", function()
    local ok, err = run(nil, { allow_nonfinite = true })
    assert.is_true(ok, err)
    assert.same({ "x-1_2.ckpt" }, ckpt_files(tmp))
    local saved = spore.load_checkpoint(tmp .. "/x-1_2.ckpt")
    assert.is_true(nonfinite(saved["fc3.bias"]:sum()))
    os.remove(tmp .. "/x-1_2.ckpt")
    -- the callback's own opt-in; training itself stops at the end-of-training check
    ok, err = run({ allow_nonfinite = true }, {})
    assert.is_false(ok)
    assert.matches("^step 2: parameter 'fc3%.bias' is not finite", err)
    assert.same({ "x-1_2.ckpt" }, ckpt_files(tmp))
  end)
end)

describe("Model:eval on an empty dataset", function()
  it("is an error naming the dataset, not an accuracy of 0", function()
    local empty = data.from_tensors(spore.zeros({ 0, 32, 32, 1 }), spore.zeros({ 0 }, "int32"),
      { name = "empty-set", transforms = { data.vision.HWC2CHW() } })
    assert.equal(0, empty:num_batches())
    local n = 0
    for _ in empty:batches() do n = n + 1 end
    assert.equal(0, n)
    local model = spore.Model(spore.models.lenet5())
    local ok, err = pcall(model.eval, model, empty)
    assert.is_false(ok)
    assert.equal("Model:eval: dataset 'empty-set' yields no sample: nothing to evaluate", err)
  end)
end)

---------------------------------------------------------------- scripts
local function mnist_dir()
  local p = H.fixture("mnist/train-images-idx3-ubyte.gz")
  return p and (p:gsub("/train%-images%-idx3%-ubyte%.gz$", ""))
end

describe("scripts notice non-finite training (whatever --quiet says)", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("train.lua --lr inf --quiet exits 1 with one line and saves nothing; --allow-nonfinite trains on", function()
    local dir = mnist_dir()
    if not dir then return pending("fixture missing: mnist (set SPORE_FIXTURES)") end
    local cmd = ("luajit scripts/train.lua --dataset mnist --data %s --lr inf --quiet --steps 2 --out %s"):format(dir, tmp)
    local out, rc = H.run(cmd .. " 2>&1 >/dev/null")
    assert.equal(1, rc, out)
    assert.equal("train.lua: step 1: parameter 'conv1.weight' is not finite (epoch 1); training stopped "
      .. "(--allow-nonfinite trains on)\n", out)
    assert.same({}, ckpt_files(tmp))
    -- allowed: it trains on, even with the per-step loss lines (LossMonitor) on
    out, rc = H.run(cmd:gsub(" %-%-quiet", "") .. " --allow-nonfinite 2>/dev/null")
    assert.equal(0, rc, out)
    assert.matches('"steps":2', out)
    assert.equal(1, #ckpt_files(tmp))
  end)

  it("finetune.lua --lr inf --quiet exits 1 with one line", function()
    local dir = mnist_dir()
    local ck = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not dir or not ck then return pending("fixtures missing: mnist, mindspore LeNet (set SPORE_FIXTURES)") end
    local out, rc = H.run(("luajit scripts/finetune.lua --ckpt %s --dataset mnist --data %s --lr inf --quiet --steps 2 "
      .. "--out %s 2>&1 >/dev/null"):format(ck, dir, tmp))
    assert.equal(1, rc, out)
    local last = out:match("([^\n]*)\n$")
    assert.equal("finetune.lua: step 1: parameter 'conv1.weight' is not finite (epoch 1); training stopped "
      .. "(--allow-nonfinite trains on)", last)
    assert.same({}, ckpt_files(tmp))
  end)

  it("--steps 0 (and eval --limit 0) is a bad argument: the usage and exit 2", function()
    for _, c in ipairs({ { "train.lua --steps 0", "--steps must be at least 1" },
      { "finetune.lua --steps -3", "--steps must be at least 1" },
      { "eval.lua --ckpt x.ckpt --limit 0", "--limit must be at least 1" } }) do
      local out, rc = H.run("luajit scripts/" .. c[1] .. " --out " .. tmp .. " 2>&1 >/dev/null")
      if c[1]:match("^eval") then out, rc = H.run("luajit scripts/" .. c[1] .. " 2>&1 >/dev/null") end
      assert.equal(2, rc, c[1] .. ": " .. out)
      assert.truthy(out:find(c[2], 1, true), out)
      assert.truthy(out:find("usage: luajit scripts/", 1, true), out)
    end
  end)
end)

---------------------------------------------------------------- JSON is UTF-8
-- an independent validator (Unicode table 3-7, one pattern per well-formed byte sequence)
local WELL_FORMED = { "[%z\1-\127]", "[\194-\223][\128-\191]", "\224[\160-\191][\128-\191]",
  "[\225-\236\238\239][\128-\191][\128-\191]", "\237[\128-\159][\128-\191]",
  "\240[\144-\191][\128-\191][\128-\191]", "[\241-\243][\128-\191][\128-\191][\128-\191]",
  "\244[\128-\143][\128-\191][\128-\191]" }
local function is_utf8(s)
  local i = 1
  while i <= #s do
    local nxt
    for _, p in ipairs(WELL_FORMED) do
      local a, b = s:find("^" .. p, i)
      if a then nxt = b + 1 break end
    end
    if not nxt then return false, i end
    i = nxt
  end
  return true
end

describe("JSON output is valid UTF-8", function()
  local json = require("spore.json")
  local R = "\239\191\189"

  it("json.utf8_valid keeps valid text and replaces each bad byte by U+FFFD", function()
    for _, s in ipairs({ "", "plain", "caf\195\169", "\226\130\172 euro", "\240\157\132\158 clef", "\244\143\191\191" }) do
      assert.equal(s, json.utf8_valid(s))
    end
    local cases = {
      { "a\255b", "a" .. R .. "b" },                    -- never a UTF-8 byte
      { "\128x", R .. "x" },                            -- stray continuation
      { "\192\128", R .. R },                           -- overlong NUL
      { "\224\128\128", R .. R .. R },                  -- overlong 3-byte
      { "\237\160\128", R .. R .. R },                  -- a surrogate (U+D800)
      { "\244\144\128\128", R .. R .. R .. R },         -- past U+10FFFF
      { "end\226\130", "end" .. R .. R },               -- truncated
    }
    for _, c in ipairs(cases) do
      local got = json.utf8_valid(c[1])
      assert.equal(c[2], got)
      assert.is_true(is_utf8(got))
    end
    local enc = json.encode({ ["k\1\255"] = "\128" })
    assert.is_true(is_utf8(enc), enc)
    assert.same({ ["k\1" .. R] = R }, json.decode(enc))
  end)

  it("inspect --json escapes a tensor name that is not UTF-8", function()
    local tmp = H.tmpdir()
    local path = tmp .. "/bad_name.ckpt"
    local d = {}
    d["w\255\192\128eight"] = spore.ones({ 2 })
    local saved, why = pcall(spore.save_checkpoint, d, path)
    if not saved then
      os.execute("rm -rf '" .. tmp .. "'")
      return pending("the writer refuses a name that is not UTF-8: " .. tostring(why))
    end
    local out, rc = H.run("luajit scripts/inspect.lua --json " .. path .. " 2>&1")
    os.execute("rm -rf '" .. tmp .. "'")
    if rc ~= 0 then
      -- a reader that refuses such a name is fine too, as long as it says so
      assert.equal(1, rc, out)
      return
    end
    assert.is_true(is_utf8(out), out)
    assert.equal("w" .. R .. R .. R .. "eight", json.decode(out).tensors[1].name, out)
  end)
end)

---------------------------------------------------------------- nil arguments
describe("nil arguments give errors naming the argument", function()
  local ckpt = require("spore.ckpt")
  local dense = function() return nn.Dense(2, 2) end
  local cases = {
    { "load_checkpoint(nil)", function() spore.load_checkpoint(nil) end, "path must be a string, got nil" },
    { "load_param_into_net(nil, {})", function() spore.load_param_into_net(nil, {}) end, "expected a network" },
    { "load_param_into_net(net, nil)", function() spore.load_param_into_net(dense(), nil) end, "expected a parameter dict" },
    { "save_checkpoint(nil, path)", function() spore.save_checkpoint(nil, "/nonexistent/x.ckpt") end, "got nil" },
    { "save_checkpoint(net, nil)", function() spore.save_checkpoint(dense(), nil) end, "path must be" },
    { "Model(nil)", function() spore.Model(nil) end, "Model: net must be a module" },
    { "tensor(nil)", function() spore.tensor(nil) end, "got nil" },
    { "zeros(nil)", function() spore.zeros(nil) end, "shape must be a table of sizes, got nil" },
    { "t:copy_(nil)", function() spore.zeros({ 2 }):copy_(nil) end, "expected a tensor, got nil" },
    { "Momentum(nil)", function() spore.optim.Momentum(nil, 0.1, 0.9) end, "params must be" },
    { "SGD(nil)", function() spore.optim.SGD(nil, 0.1) end, "params must be" },
    { "Adam(nil)", function() spore.optim.Adam(nil, 0.1) end, "params must be" },
    { "Momentum(params, nil)", function() spore.optim.Momentum(dense():trainable_params(), nil, 0.9) end, "learning_rate must be" },
    { "mnist(nil)", function() data.mnist(nil) end, "dataset directory" },
    { "cifar10(nil)", function() data.cifar10(nil) end, "dataset directory" },
    { "idx_load(nil)", function() data.idx_load(nil) end, "idx_load: path must be a string, got nil" },
    { "from_tensors(nil, nil)", function() data.from_tensors(nil, nil) end, "images and labels must be Tensors" },
    { "Dense(nil, nil)", function() nn.Dense(nil, nil) end, "Dense: in_channels must be a positive integer, got nil" },
    { "Dense(2, nil)", function() nn.Dense(2, nil) end, "Dense: out_channels must be a positive integer, got nil" },
    { "Conv2d(nil)", function() nn.Conv2d(nil, 2, 3) end, "Conv2d: in_channels must be a positive integer, got nil" },
    { "Conv2d(1, 2, nil)", function() nn.Conv2d(1, 2, nil) end, "Conv2d: kernel_size must be" },
    { "BatchNorm2d(nil)", function() nn.BatchNorm2d(nil) end, "BatchNorm2d: num_features must be a positive integer" },
    { "Dense:forward(nil)", function() dense():forward(nil) end, "Dense: expected an input Tensor, got nil" },
    { "Conv2d:forward(nil)", function() nn.Conv2d(1, 2, 3):forward(nil) end, "Conv2d: expected an input Tensor, got nil" },
    { "loss:forward(nil, y)", function() nn.SoftmaxCrossEntropyWithLogits{ sparse = true }:forward(nil, spore.zeros({ 1 })) end,
      "loss: logits must be a Tensor, got nil" },
    { "loss:forward(x, nil)", function() nn.SoftmaxCrossEntropyWithLogits{ sparse = true }:forward(spore.zeros({ 1, 2 }), nil) end,
      "loss: labels must be a Tensor, got nil" },
    { "CrossEntropyLoss:forward(x, nil)", function() nn.CrossEntropyLoss():forward(spore.zeros({ 1, 2 }), nil) end,
      "loss: labels must be a Tensor, got nil" },
    { "Parameter(nil)", function() nn.Parameter(nil, "w") end, "Parameter: data must be a Tensor, got nil" },
    { "net:replace(nil, m)", function() spore.models.lenet5():replace(nil, dense()) end, "replace: path must be" },
    { "net:replace('fc3', nil)", function() spore.models.lenet5():replace("fc3", nil) end, "replace: new must be a module" },
    { "model:train(1, nil)", function() local n, o, l = lenet(); spore.Model(n, l, o):train(1, nil) end, "dataset must have" },
    { "model:eval(nil)", function() spore.Model(dense()):eval(nil) end, "Model:eval: dataset must have :batches(), got nil" },
    { "model:predict(nil)", function() spore.Model(dense()):predict(nil) end, "Model:predict: x must be a Tensor, got nil" },
    { "ckpt.keys(nil)", function() ckpt.keys(nil) end, "ckpt.keys: expected a parameter dict, got nil" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ok, err = pcall(c[2])
      assert.is_false(ok, c[1] .. " did not fail")
      err = tostring(err)
      assert.truthy(err:find(c[3], 1, true), c[1] .. ": " .. err)
      assert.falsy(err:find("attempt to", 1, true), c[1] .. ": " .. err)
      assert.falsy(err:find("bad argument #", 1, true), c[1] .. ": " .. err)
    end)
  end

  it("Conv2d refuses stride 0 where it is built", function()
    for _, s in ipairs({ 0, { 0, 1 }, { 1, 0 } }) do
      local ok, err = pcall(nn.Conv2d, 1, 2, 3, { stride = s })
      assert.is_false(ok)
      assert.matches("stride must be >= 1", err)
    end
  end)
end)
