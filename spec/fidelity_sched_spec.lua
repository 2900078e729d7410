-- fidelity_sched_spec.lua — learning rates, losses and loss scale against MindSpore 2.10's own
-- values, recorded by scripts/gen/gen_ms_fidelity_sched.py into
-- spec/fixtures/ms_fidelity_sched.json (issue #10): every dynamic-lr function and
-- LearningRateSchedule, CrossEntropyLoss (weight, ignore_index, label_smoothing, each
-- reduction, class-index and probability targets) and the zoo's CrossEntropySmooth with their
-- gradients, 3 Momentum steps under FixedLossScaleManager(1024) + Momentum{loss_scale=1024},
-- DynamicLossScaleManager steps with overflow, an lr array that runs out, the zoo's get_lr.
-- Each comparison is within 1e-6 relative (integers exactly) and prints its worst error.
local spore = require("spore")
local H = spec_helper
local nn, optim, T = spore.nn, spore.optim, require("spore.tensor")
local json = require("dkjson")

local path = assert(H.local_fixture("ms_fidelity_sched.json"))
local G
do
  local f = assert(io.open(path, "rb"))
  -- plain Lua tables (dkjson marks arrays with a metatable; spore takes plain arrays)
  local function plain(v)
    if type(v) ~= "table" then return v end
    local r = {}
    for k, x in pairs(v) do r[k] = plain(x) end
    return r
  end
  G = plain(assert(json.decode(f:read("*a"))))
  f:close()
end
local dev = spore.get_default_device()

local RTOL = 1e-6
-- worst relative error of a against b (elementwise; an element of b that is 0 compares
-- absolutely, scaled by the array's largest magnitude)
local function rel_err(a, b)
  local big = 0
  for i = 1, #b do big = math.max(big, math.abs(b[i])) end
  local worst = 0
  for i = 1, #b do
    local d = math.abs(a[i] - b[i])
    local den = math.abs(b[i])
    local e = den > 0 and d / den or (big > 0 and d / big or d)
    if e > worst then worst = e end
  end
  return worst
end
local report = {}
-- norm = true: normwise relative error max|a - b| / max|b| (for gradients and weights, whose
-- smallest entries carry the float32 rounding of the largest: MindSpore's own kernels
-- compute them in float32); the elementwise error is reported alongside
local function check(what, a, b, tol, norm)
  assert.equal(#b, #a, what .. ": length")
  local worst = rel_err(a, b)
  local elem = worst
  if norm then
    local big, d = 0, 0
    for i = 1, #b do big = math.max(big, math.abs(b[i])); d = math.max(d, math.abs(a[i] - b[i])) end
    worst = big > 0 and d / big or d
  end
  if os.getenv("SPORE_DEBUG_FID") and worst > 1e-7 then
    for i = 1, #b do print(what, i, a[i], b[i], a[i] - b[i]) end
  end
  report[#report + 1] = { what, worst, elem }
  assert(worst <= (tol or RTOL), ("%s: max relative error %.3g > %.3g"):format(what, worst, tol or RTOL))
  return worst
end

local function worst_of(prefix, elementwise)
  local w = 0
  for _, r in ipairs(report) do
    if r[1]:sub(1, #prefix) == prefix then w = math.max(w, elementwise and r[3] or r[2]) end
  end
  return w
end

describe("MindSpore fidelity: learning rates", function()
  it("every mindspore.nn dynamic-lr function, same arguments, same values", function()
    for _, c in ipairs(G.dynamic_lr) do
      check("dynamic_lr " .. c.fn, nn[c.fn](unpack(c.args)), c.lr)
    end
    print(("\n  dynamic_lr: %d arrays, max relative error %.3g"):format(#G.dynamic_lr, worst_of("dynamic_lr")))
  end)

  it("every LearningRateSchedule at global_step 0..12", function()
    for _, c in ipairs(G.schedules) do
      local s = nn[c.cls](unpack(c.args))
      local v = {}
      for i, st in ipairs(c.steps) do v[i] = s(st) end
      check("schedule " .. c.cls, v, c.values)
    end
    print(("\n  schedules: %d, max relative error %.3g"):format(#G.schedules, worst_of("schedule")))
  end)

  it("a schedule is an optimizer's learning_rate, read at its global_step", function()
    local sch = nn.ExponentialDecayLR(0.1, 0.9, 4, true)
    local w = nn.Parameter(spore.tensor({ 1, -1 }):to(dev), "w")
    w.grad = spore.tensor({ 0.5, 0.25 }):to(dev)
    local opt = optim.Momentum({ w }, sch, 0)
    local want = { 1, -1 }
    for step = 0, 5 do
      local lr = T.to_float32(sch(step))
      want[1], want[2] = want[1] - T.to_float32(lr * 0.5), want[2] - T.to_float32(lr * 0.25)
      opt:step()
    end
    check("schedule as lr", w.data:to("cpu"):totable(), want, 1e-6)
  end)

  it("the zoo's get_lr, every mode, from start_epoch on", function()
    for _, c in ipairs(G.zoo_lr) do
      check("zoo get_lr " .. c.args[8], spore.zoo.get_lr(unpack(c.args)), c.lr)
    end
    local a = spore.zoo.get_lr { lr_init = 0, lr_end = 0, lr_max = 0.8, warmup_epochs = 2, total_epochs = 10,
      start_epoch = 0, steps_per_epoch = 5, lr_decay_mode = "linear" }
    assert.same(G.zoo_lr[9].lr, a)
    print(("\n  zoo get_lr: %d arrays, max relative error %.3g"):format(#G.zoo_lr, worst_of("zoo get_lr")))
  end)

  it("bad arguments are errors naming the function and the argument", function()
    assert.has_error(function() nn.exponential_decay_lr(0.1, 0.9, 0, 2, 3) end,
      "exponential_decay_lr: 'total_step' must be a positive integer, got 0")
    assert.has_error(function() nn.cosine_decay_lr(0.2, 0.1, 10, 1, 2) end,
      "cosine_decay_lr: 'max_lr' must be greater than 'min_lr', got 0.1 and 0.2")
    assert.has_error(function() nn.piecewise_constant_lr({ 2, 1 }, { 0.1, 0.2 }) end,
      "piecewise_constant_lr: milestone[1] must be greater than milestone[0], got 1 and 2")
    assert.has_error(function() nn.WarmUpLR(0.1, 0) end, "WarmUpLR: 'warmup_steps' must be a positive integer, got 0")
    assert.has_error(function() spore.zoo.get_lr { lr_init = 0, lr_mx = 1 } end)
  end)

  it("an lr array that runs out is an error at that step, as in MindSpore", function()
    local r = G.lr_runs_out
    assert.equal(2, r.steps_ok)
    assert.truthy(r.error:find("Gather", 1, true))
    local w = nn.Parameter(spore.tensor({ 1 }):to(dev), "w")
    w.grad = spore.tensor({ 1 }):to(dev)
    local opt = optim.Momentum({ w }, { 0.1, 0.05 }, 0.9)
    opt:step(); opt:step()
    local ok, err = pcall(function() opt:step() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("learning-rate array 'learning_rate' has 2 values and step 3 needs value 2", 1, true))
    assert.equal(2, opt:global_step())
  end)
end)

describe("MindSpore fidelity: CrossEntropyLoss and CrossEntropySmooth", function()
  local L = G.losses
  local N, C = L.N, L.C
  local function rows(flat, n, c)
    local r = {}
    for i = 1, n do
      r[i] = {}
      for j = 1, c do r[i][j] = flat[(i - 1) * c + j] end
    end
    return r
  end
  local function target(name)
    if name == "p" then return spore.tensor(rows(L.targets.p, N, C)) end
    return spore.tensor(L.targets[name], "int32")
  end

  it("values and d(loss)/d(logits) for every case", function()
    for _, c in ipairs(L.cases) do
      local loss
      if c.name == "ce_smooth" then
        loss = spore.zoo.CrossEntropySmooth(c.kw.sparse, c.kw.reduction, c.kw.smooth_factor, c.kw.num_classes)
      else
        loss = nn.CrossEntropyLoss { weight = c.kw.weight and spore.tensor(c.kw.weight), ignore_index = c.kw.ignore_index,
          reduction = c.kw.reduction, label_smoothing = c.kw.label_smoothing }
      end
      local x = spore.tensor(rows(L.x, N, C)):to(dev)
      local v = loss:forward(x, target(c.target):to(dev))
      local what = ("%s %s %s ls=%g w=%s"):format(c.name, c.target, c.kw.reduction, c.kw.label_smoothing or c.kw.smooth_factor,
        tostring(c.kw.weight ~= nil))
      if c.kw.reduction == "none" then
        check("loss value " .. what, loss.output:to("cpu"):totable(), c.value)
      else
        check("loss value " .. what, { v }, c.value)
      end
      -- MindSpore's gradient is of the sum of its output (the reduced value, or the rows)
      local g = loss:backward()
      check("loss grad " .. what, g:to("cpu"):flat(), c.grad, 1e-6, true)
    end
    print(("\n  losses: %d cases, values max relative error %.3g; gradients normwise %.3g (elementwise %.3g)")
      :format(#L.cases, worst_of("loss value"), worst_of("loss grad"), worst_of("loss grad", true)))
  end)

  it("gradients match finite differences (float64 reference in Lua)", function()
    -- central differences of a double-precision re-computation of MindSpore's formula
    local x0 = rows(L.x, N, C)
    local w = { 0.5, 1.0, 2.0, 0.25, 1.5 }
    local y = { 1, -100, 4, 2, 0, 3 }
    local ls = 0.1
    local function value(x)
      local num, den = 0, 0
      for n = 1, N do
        if y[n] ~= -100 then
          local m = -math.huge
          for c = 1, C do m = math.max(m, x[n][c]) end
          local s = 0
          for c = 1, C do s = s + math.exp(x[n][c] - m) end
          local lse = m + math.log(s)
          local t = y[n] + 1
          local sm = 0
          for c = 1, C do sm = sm + w[c] * (lse - x[n][c]) end
          num = num + (1 - ls) * w[t] * (lse - x[n][t]) + ls / C * sm
          den = den + w[t]
        end
      end
      return num / den
    end
    local loss = nn.CrossEntropyLoss { weight = w, label_smoothing = ls }
    local v = loss:forward(spore.tensor(x0):to(dev), spore.tensor(y, "int32"):to(dev))
    assert.near(value(x0), v, 1e-6 * math.abs(v))
    local g = loss:backward():to("cpu"):flat()
    local h = 1e-5
    for n = 1, N do
      for c = 1, C do
        local keep = x0[n][c]
        x0[n][c] = keep + h; local vp = value(x0)
        x0[n][c] = keep - h; local vm = value(x0)
        x0[n][c] = keep
        local fd = (vp - vm) / (2 * h)
        assert(math.abs(fd - g[(n - 1) * C + c]) <= 1e-6 + 1e-4 * math.abs(fd),
          ("[%d,%d]: %g vs finite difference %g"):format(n, c, g[(n - 1) * C + c], fd))
      end
    end
  end)

  it("refuses what MindSpore refuses, by name", function()
    assert.has_error(function() nn.CrossEntropyLoss { labl_smoothing = 0.1 } end,
      "CrossEntropyLoss: unknown option 'labl_smoothing' (did you mean 'label_smoothing'?)")
    assert.has_error(function() nn.CrossEntropyLoss { label_smoothing = 1.5 } end,
      "CrossEntropyLoss: label_smoothing must be in [0.0, 1.0], got 1.5")
    assert.has_error(function() nn.CrossEntropyLoss { reduction = "avg" } end,
      "CrossEntropyLoss: reduction must be 'none', 'mean' or 'sum', got 'avg'")
    local l = nn.CrossEntropyLoss()
    local x = spore.zeros({ 2, 3 }):to(dev)
    assert.has_error(function() l:forward(x, spore.tensor({ 0, 3 }, "int32"):to(dev)) end)
    assert.has_error(function() l:forward(x, spore.zeros({ 2 }):to(dev)) end,
      "CrossEntropyLoss: float labels are class probabilities and must be [2, 3] like the logits, got [2] "
      .. "(class indices are an integer Tensor)")
    assert.has_error(function() nn.CrossEntropyLoss { weight = { 1, 2 } }:forward(x, spore.tensor({ 0, 1 }, "int32"):to(dev)) end,
      "CrossEntropyLoss: weight has 2 values, the logits 3 classes")
  end)
end)

-- a Dense-ReLU-Dense net with MindSpore's initial weights, and the fixture's batches
local function small_net(init)
  local net = nn.SequentialCell({ nn.Dense(6, 5), nn.ReLU(), nn.Dense(5, 3) }):to(dev)
  local names = { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" }
  local ps = net:trainable_params()
  for i, p in ipairs(ps) do
    local shape = p.data:shape()
    p.data:copy_(T.from_table(init[names[i]], "float32"):reshape(shape):to(dev))
  end
  return net, ps, names
end
local function batches(xs, ys)
  local ds = { name = "fixture batches" }
  function ds:num_batches() return #xs end
  function ds:size() return #xs * #ys[1] end
  function ds:batches()
    local i = 0
    return function()
      i = i + 1
      if i > #xs then return nil end
      local n = #ys[i]
      return T.from_table(xs[i], "float32"):reshape({ n, #xs[i] / n }), spore.tensor(ys[i], "int32")
    end
  end
  return ds
end

describe("MindSpore fidelity: loss scale", function()
  it("3 Momentum steps under FixedLossScaleManager(1024, drop_overflow_update=false), Momentum{loss_scale=1024}", function()
    local F = G.loss_scale_fixed
    assert.equal("TrainOneStepCell", F.train_network)
    local net, ps, names = small_net(F.init)
    local opt = optim.Momentum(ps, F.lr, F.momentum, { weight_decay = F.weight_decay, loss_scale = F.loss_scale })
    local model = spore.Model(net, nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }, opt,
      { loss_scale_manager = spore.FixedLossScaleManager(1024, { drop_overflow_update = false }) })
    local seen = {}
    local rec = { on_train_step_end = function(_, ctx)
      local s = { loss = ctx.net_outputs, params = {} }
      for i, p in ipairs(ps) do s.params[names[i]] = p.data:to("cpu"):flat() end
      seen[#seen + 1] = s
    end }
    model:train(1, batches(F.x, F.y), { callbacks = { rec } })
    assert.equal(3, #seen)
    for k = 1, 3 do
      check("loss scale fixed: loss", { seen[k].loss }, { F.steps[k].loss })
      for _, n in ipairs(names) do
        check("loss scale fixed: " .. n, seen[k].params[n], F.steps[k].params[n], 1e-6, true)
      end
    end
    print(("\n  fixed loss scale: 3 steps, losses max relative error %.3g, weights normwise %.3g (elementwise %.3g)")
      :format(worst_of("loss scale fixed: loss"), worst_of("loss scale fixed: fc"), worst_of("loss scale fixed: fc", true)))
  end)

  it("the same recipe without the manager trains with gradients 1024 x too small (what MindSpore's Model avoids)", function()
    local F = G.loss_scale_fixed
    local net, ps, names = small_net(F.init)
    local opt = optim.Momentum(ps, F.lr, F.momentum, { weight_decay = F.weight_decay, loss_scale = F.loss_scale })
    local model = spore.Model(net, nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }, opt)
    model:train(1, batches(F.x, F.y))
    local w = ps[1].data:to("cpu"):flat()
    assert.is_true(rel_err(w, F.steps[3].params[names[1]]) > 1e-3)
  end)

  it("DynamicLossScaleManager: overflow skips the step and divides the scale, scale_window steps multiply it", function()
    local D = G.loss_scale_dynamic
    local net, ps, names = small_net(D.init)
    local opt = optim.Momentum(ps, D.lr, D.momentum)
    local mgr = spore.DynamicLossScaleManager(D.init_loss_scale, D.scale_factor, D.scale_window)
    local model = spore.Model(net, nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }, opt,
      { loss_scale_manager = mgr })
    local seen = {}
    local rec = { on_train_step_end = function(_, ctx)
      local s = { loss = ctx.net_outputs, overflow = ctx.overflow, scale_used = ctx.loss_scale,
        scale_after = ctx.next_loss_scale, params = {} }
      for i, p in ipairs(ps) do s.params[names[i]] = p.data:to("cpu"):flat() end
      seen[#seen + 1] = s
    end }
    model:train(1, batches(D.x, D.y), { callbacks = { rec } })
    assert.equal(#D.steps, #seen)
    local steps_taken = 0
    for k, want in ipairs(D.steps) do
      assert.equal(want.overflow, seen[k].overflow, "overflow at step " .. k)
      assert.equal(want.scale_used, seen[k].scale_used, "scale used at step " .. k)
      assert.equal(want.scale_after, seen[k].scale_after, "scale after step " .. k)
      if not want.overflow then steps_taken = steps_taken + 1 end
      check("loss scale dynamic: loss", { seen[k].loss }, { want.loss })
      for _, n in ipairs(names) do check("loss scale dynamic: " .. n, seen[k].params[n], want.params[n], 1e-6, true) end
    end
    assert.equal(steps_taken, opt:global_step())
    assert.equal(D.init_loss_scale, mgr:get_loss_scale()) -- the manager keeps its value, as MindSpore's
    print(("\n  dynamic loss scale: %d steps (%d skipped), losses max relative error %.3g, weights normwise %.3g "
      .. "(elementwise %.3g)"):format(#D.steps, #D.steps - steps_taken, worst_of("loss scale dynamic: loss"),
      worst_of("loss scale dynamic: fc"), worst_of("loss scale dynamic: fc", true)))
  end)

  it("managers check their arguments as MindSpore does", function()
    assert.has_error(function() spore.FixedLossScaleManager(0.5) end,
      "FixedLossScaleManager: the argument 'loss_scale' must be >= 1, but got 0.5")
    assert.has_error(function() spore.FixedLossScaleManager(1024, { drop_overflow_updat = false }) end,
      "FixedLossScaleManager: unknown option 'drop_overflow_updat' (did you mean 'drop_overflow_update'?)")
    assert.has_error(function() spore.DynamicLossScaleManager(2 ^ 10, 2, 0) end,
      "DynamicLossScaleManager: scale_window must be a positive integer, got 0")
    local f = spore.FixedLossScaleManager(1024, false)
    assert.equal(1024, f:get_loss_scale())
    assert.is_false(f:get_drop_overflow_update())
    assert.is_nil(f:get_update_cell())
    -- the manager's own host-side update (MindSpore's update_loss_scale)
    local d = spore.DynamicLossScaleManager(16, 2, 2)
    d:update_loss_scale(false); assert.equal(16, d:get_loss_scale())
    d:update_loss_scale(false); assert.equal(32, d:get_loss_scale())
    d:update_loss_scale(true); assert.equal(16, d:get_loss_scale())
    assert.has_error(function() spore.Model({ forward = function() end }, nil, nil, { loss_scale_manager = 1024 }) end)
  end)
end)
