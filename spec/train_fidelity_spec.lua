-- train_fidelity_spec.lua — Model, callbacks, metrics and ModelCheckpoint against MindSpore
-- 2.10's own outputs, recorded by scripts/gen/gen_ms_fidelity_model.py in
-- spec/fixtures/ms_fidelity_model.json (floats within 1e-6 relative, integers exact).
local spore = require("spore")
local H = spec_helper
local train = spore.train
local nn = spore.nn
local ckpt = spore.ckpt
local json = require("dkjson")

local G
do
  local p = H.local_fixture("ms_fidelity_model.json")
  if p then G = json.decode(H.read_file(p)) end
end

local function close(a, b, what)
  assert(type(a) == "number", (what or "value") .. ": got " .. tostring(a))
  local tol = 1e-6 * math.abs(b) + 1e-9
  assert(math.abs(a - b) <= tol, ("%s: spore %.9g, MindSpore %.9g"):format(what or "value", a, b))
end
local function close_list(a, b, what)
  assert.equal(#b, #a, what)
  for i = 1, #b do
    if type(b[i]) == "table" then close_list(a[i], b[i], what .. "[" .. i .. "]")
    else close(a[i], b[i], what .. "[" .. i .. "]") end
  end
end
-- within 1e-6 of the tensor's largest magnitude: optimizer moments are sums of gradients
-- whose terms cancel, so a small element carries the rounding of the large ones
local function close_tensor(a, b, what)
  local fa, fb = {}, {}
  local function flat(t, out) for _, v in ipairs(t) do if type(v) == "table" then flat(v, out) else out[#out + 1] = v end end end
  flat(a, fa); flat(b, fb)
  assert.equal(#fb, #fa, what)
  local m = 0
  for _, v in ipairs(fb) do m = math.max(m, math.abs(v)) end
  for i = 1, #fb do
    assert(math.abs(fa[i] - fb[i]) <= 1e-6 * m, ("%s[%d]: spore %.9g, MindSpore %.9g (max |x| %.3g)"):format(what, i, fa[i], fb[i], m))
  end
end

describe("MindSpore fidelity: metrics", function()
  if not G then it("needs spec/fixtures/ms_fidelity_model.json", function() pending("fixture missing") end) return end
  local M = G.metrics
  local logits = spore.tensor(M.logits, "float32")
  local labels = spore.tensor(M.labels, "int32")

  it("Precision, Recall, F1, Fbeta, Accuracy, TopK, ConfusionMatrix and Loss equal MindSpore's", function()
    local ms = {
      precision = train.Precision(), recall = train.Recall(), f1 = train.F1(), f05 = train.Fbeta(0.5),
      acc = train.Accuracy(), top1 = train.TopKCategoricalAccuracy(1), top2 = train.TopKCategoricalAccuracy(2),
      top3 = train.TopKCategoricalAccuracy { k = 3 },
    }
    local cms = {}
    for _, m in ipairs({ "no_norm", "target", "prediction", "all" }) do cms[m] = train.ConfusionMatrix(4, m) end
    local loss = train.Loss()
    for i, b in ipairs(M.batches) do
      local n = b[2] - b[1]
      local lg, lb = logits:narrow(1, b[1] + 1, n), labels:narrow(1, b[1] + 1, n)
      for _, m in pairs(ms) do m:update(lg, lb) end
      for _, m in pairs(cms) do m:update(lg, lb) end
      loss:update(M.batch_losses[i])
    end
    for _, k in ipairs({ "precision", "recall", "f1", "f05" }) do
      close_list(ms[k]:eval(), M.ms[k], k)
      close(ms[k]:eval(true), M.ms[k .. "_avg"], k .. " average")
    end
    for _, k in ipairs({ "acc", "top1", "top2", "top3" }) do close(ms[k]:eval(), M.ms[k], k) end
    for m, cm in pairs(cms) do close_list(cm:eval(), M.ms["cm_" .. m], "ConfusionMatrix " .. m) end
    -- per batch, not per sample: the batches are 8, 12 and 10 samples
    close(loss:eval(), M.ms.loss, "Loss")
    local p1 = train.Precision()
    local onehot = spore.zeros({ 30, 4 })
    for i, y in ipairs(M.labels) do onehot:set({ i, y + 1 }, 1) end
    p1:update(logits, onehot)
    close_list(p1:eval(), M.ms.precision_onehot, "Precision (one-hot labels)")
  end)

  it("Model's metrics: a list, a set or a dict, keyed as given (acc stays acc)", function()
    local Metrics = train.Metrics
    for _, spec in ipairs({ { "acc", "precision" }, { acc = true, precision = true },
      { acc = "accuracy", precision = train.Precision() } }) do
      local m = Metrics.new(spec)
      m:update(logits, labels)
      local r = m:eval()
      close(r.acc, M.ms.acc, "acc")
      assert.is_nil(r.accuracy)
      close_list(r.precision, M.ms.precision, "precision")
    end
    assert.has_error(function() Metrics.new({ "acuracy" }) end, "unknown metric 'acuracy' (did you mean 'accuracy'?)")
    assert.has_error(function() Metrics.new({ "mae" }) end, "metric 'mae' is MindSpore's, but spore does not implement it")
    assert.has_error(function() Metrics.new({ "topk" }) end)
    assert.has_error(function() train.Precision("multilabel") end,
      "Precision: eval_type 'multilabel' is MindSpore's, but spore does not implement it")
  end)
end)

describe("MindSpore fidelity: train_network's save order", function()
  if not G then it("needs the fixture", function() pending("fixture missing") end) return end
  it("save_checkpoint(model.train_network) writes MindSpore's names, order, shapes and dtypes", function()
    local Net = nn.class("FidNet")
    function Net:__init()
      self:register_module("conv", nn.Conv2d(1, 2, 3, { has_bias = false }))
      self:register_module("bn", nn.BatchNorm2d(2))
      self:register_module("flat", nn.Flatten())
      self:register_module("fc", nn.Dense(2 * 4 * 4, 3))
    end
    function Net:forward(x) return self.fc(self.flat(self.bn(self.conv(x)))) end
    local net = Net()
    local opt = spore.optim.Momentum(net:trainable_params(), 0.1, 0.9)
    local model = spore.Model(net, nn.SoftmaxCrossEntropyWithLogits(true, "mean"), opt)
    local tmp = H.tmpdir()
    local path = spore.save_checkpoint(model.train_network, tmp .. "/order.ckpt")
    local d = spore.load_checkpoint(path)
    local keys = ckpt.keys(d)
    local want = {}
    for i, e in ipairs(G.order) do want[i] = e.name end
    assert.same(want, keys)
    local dt = { Float32 = "float32", Int32 = "int32" }
    for _, e in ipairs(G.order) do
      assert.same(e.shape, d[e.name]:shape(), e.name)
      assert.equal(dt[e.dtype], d[e.name]:dtype(), e.name)
    end
    -- a frozen parameter (not in the optimizer) comes with the BN statistics, in net order
    local net2 = Net()
    net2.conv.weight.requires_grad = false
    local m2 = spore.Model(net2, nn.SoftmaxCrossEntropyWithLogits(true, "mean"),
      spore.optim.Momentum(net2:trainable_params(), 0.1, 0.9))
    local names = {}
    for i, kv in ipairs(m2.train_network:parameters_and_names()) do names[i] = kv[1] end
    assert.same(G.order_frozen, names)
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)

describe("MindSpore fidelity: Model, callbacks and ModelCheckpoint on a Dense(4, 3)", function()
  if not G then it("needs the fixture", function() pending("fixture missing") end) return end
  local Tr = G.train

  local function dataset(xs, ys)
    local ds = { name = "golden" }
    local n = #xs
    function ds:size() return n end
    function ds:num_batches() return math.ceil(n / Tr.batch) end
    function ds:batches()
      local i = 0
      return function()
        if i >= n then return nil end
        local a, b = i + 1, math.min(n, i + Tr.batch)
        i = b
        local x, y = {}, {}
        for k = a, b do x[#x + 1] = xs[k]; y[#y + 1] = ys[k] end
        return spore.tensor(x, "float32"):to(spore.get_default_device()), spore.tensor(y, "int32")
      end
    end
    return ds
  end
  local function make(opts)
    local net = nn.Dense(4, 3)
    net.weight.data:copy_(spore.tensor(Tr.w0, "float32"))
    net.bias.data:copy_(spore.tensor(Tr.b0, "float32"))
    local opt = spore.optim.Momentum(net:trainable_params(), Tr.lr, Tr.momentum)
    return net, opt, spore.Model(net, nn.SoftmaxCrossEntropyWithLogits(true, "mean"), opt, opts)
  end
  local function recorder(extra)
    local rec = { trace = {} }
    local function add(hook, ctx)
      local e = { hook = hook, mode = ctx.mode, cur_epoch_num = ctx.cur_epoch_num, cur_step_num = ctx.cur_step_num,
        batch_num = ctx.batch_num, epoch_num = ctx.epoch_num }
      if hook == "on_train_epoch_end" and ctx.eval_results then e.eval_results = ctx.eval_results end
      if extra then for k, v in pairs(extra(hook, ctx)) do e[k] = v end end
      rec.trace[#rec.trace + 1] = e
    end
    for _, h in ipairs({ "on_train_begin", "on_train_epoch_begin", "on_train_step_end", "on_train_epoch_end",
      "on_train_end", "on_eval_begin", "on_eval_step_end", "on_eval_end" }) do
      rec[h] = function(_, ctx) add(h, ctx) end
    end
    return rec
  end
  local function same_trace(got, want, floats)
    assert.equal(#want, #got, "number of hook calls")
    for i, w in ipairs(want) do
      local g = got[i]
      for _, k in ipairs({ "hook", "mode", "cur_step_num", "batch_num", "epoch_num" }) do
        assert.equal(w[k], g[k], ("call %d (%s): %s"):format(i, w.hook, k))
      end
      if w.hook ~= "on_train_begin" then assert.equal(w.cur_epoch_num, g.cur_epoch_num, w.hook .. " cur_epoch_num") end
      if w.eval_results then
        for k, v in pairs(w.eval_results) do close(g.eval_results[k], v, "eval_results." .. k) end
      end
      for _, k in ipairs(floats or {}) do if w[k] then close(g[k], w[k], ("call %d %s"):format(i, k)) end end
    end
  end
  local function check_files(dir, want)
    local names = {}
    for f in require("lfs").dir(dir) do if f:match("%.ckpt$") then names[#names + 1] = f end end
    table.sort(names)
    local wn = {}
    for i, e in ipairs(want) do wn[i] = e.file end
    table.sort(wn)
    assert.same(wn, names)
    for _, e in ipairs(want) do
      local d = spore.load_checkpoint(dir .. "/" .. e.file)
      assert.same(e.names, ckpt.keys(d), e.file)
      for _, k in ipairs({ "epoch_num", "step_num" }) do
        if e[k] then
          assert.equal(e[k], d[k]:item(), e.file .. " " .. k)
          assert.equal("int64", d[k]:dtype(), e.file .. " " .. k)
        end
      end
      assert.equal(e.global_step, d.global_step:item(), e.file .. " global_step")
      close_tensor(d.weight:totable(), e.weight, e.file .. " weight")
      close_tensor(d.bias:totable(), e.bias, e.file .. " bias")
      close_tensor(d["moments.weight"]:totable(), e["moments.weight"], e.file .. " moments.weight")
    end
  end
  local ds = dataset(Tr.x, Tr.y)
  local vds = dataset(Tr.vx, Tr.vy)

  it("ModelCheckpoint with the zoo's append_info {{epoch_num = 3, step_num = 9}}: names, order, values", function()
    local tmp = H.tmpdir()
    local _, _, model = make()
    local cfg = train.CheckpointConfig { save_checkpoint_steps = 2, keep_checkpoint_max = 10,
      append_info = { { epoch_num = 3, step_num = 9 } } }
    model:train(2, ds, { callbacks = train.ModelCheckpoint("zoo", tmp, cfg), progress = false })
    check_files(tmp, Tr.zoo_ckpt.files)
    -- the config's append_dict is the one the callback updates, as MindSpore's
    local last = Tr.zoo_ckpt.files[#Tr.zoo_ckpt.files]
    assert.same({ epoch_num = last.epoch_num, step_num = last.step_num }, cfg.append_dict)
    os.execute("rm -rf '" .. tmp .. "'")
  end)

  it("a resumed run (initial_epoch = 1): cb_params counters, losses and files as MindSpore's", function()
    local tmp = H.tmpdir()
    local _, _, model = make()
    local rec = recorder(function(h, ctx) return h == "on_train_step_end" and { loss = ctx.net_outputs } or {} end)
    local cfg = train.CheckpointConfig { save_checkpoint_steps = 2, keep_checkpoint_max = 10,
      append_info = { "epoch_num", "step_num" } }
    local lines = {}
    model:train(3, ds, { callbacks = { train.ModelCheckpoint("r", tmp, cfg), rec,
      train.LossMonitor(2, { print = function(l) lines[#lines + 1] = l end }) }, initial_epoch = 1, progress = false })
    same_trace(rec.trace, Tr.resume.trace, { "loss" })
    -- LossMonitor: the same steps, MindSpore 2.10's format (the Python float of the float32 loss)
    assert.equal(#Tr.resume.loss_monitor, #lines)
    for i, want in ipairs(Tr.resume.loss_monitor) do
      local wp, wv = want:match("^(.*loss is )(%S+)$")
      local gp, gv = lines[i]:match("^(.*loss is )(%S+)$")
      assert.equal(wp, gp)
      close(tonumber(gv), tonumber(wv), "LossMonitor line " .. i)
      assert.equal(gv, train.callbacks.py_repr(tonumber(gv)))
    end
    check_files(tmp, Tr.resume.files)
    os.execute("rm -rf '" .. tmp .. "'")
  end)

  it("fit(4, train, valid, {valid_frequency = 2}): hooks, eval_results (eval_loss = last batch) and History", function()
    local _, _, model = make({ metrics = { acc = true, loss = true } })
    local rec = recorder()
    local hist = train.History()
    model:fit(4, ds, vds, { valid_frequency = 2, callbacks = { rec, hist }, progress = false })
    same_trace(rec.trace, Tr.fit.trace)
    for k, v in pairs(Tr.fit.history) do close_list(hist.history[k], v, "History " .. k) end
    assert.same(Tr.fit.history_epoch, hist.epoch.epoch)
    local r = model:eval(vds)
    for k, v in pairs(Tr.fit.eval_after) do close(r[k], v, "eval " .. k) end
  end)

  it("ReduceLROnPlateau, EarlyStopping and LearningRateScheduler act on the same epochs and steps", function()
    local _, opt, model = make()
    local lrs = {}
    model:train(5, ds, { progress = false, callbacks = { train.ReduceLROnPlateau { monitor = "loss", mode = "max",
      patience = 1, factor = 0.5, cooldown = 1 }, { on_train_epoch_end = function() lrs[#lrs + 1] = opt:get_lr() end } } })
    close_list(lrs, Tr.plateau, "lr after each epoch")
    local _, _, m2 = make()
    local es = train.EarlyStopping { monitor = "loss", mode = "max", patience = 2 }
    local ctx = m2:train(10, ds, { progress = false, callbacks = es })
    assert.equal(Tr.early.stopped_epoch, es.stopped_epoch)
    assert.equal(Tr.early.epochs_run, ctx.cur_epoch_num)
    local net3, opt3, m3 = make()
    local steps = {}
    m3:train(2, ds, { progress = false, callbacks = { train.LearningRateScheduler(function(lr, step)
      return step % 2 == 0 and lr * 0.5 or lr end), function() steps[#steps + 1] = opt3:get_lr() end } })
    close_list(steps, Tr.lrsched, "lr per step")
    close_tensor(net3.weight.data:totable(), Tr.lrsched_weight, "weights after the schedule")
  end)

  it("resumes as the zoo's train.py: epoch_num/step_num from the file, then the remaining epochs", function()
    local tmp = H.tmpdir()
    -- first run: one epoch, saving at its end (epoch_num = 1, step_num = 3)
    local _, _, m1 = make()
    local cfg = train.CheckpointConfig { save_checkpoint_steps = 3, keep_checkpoint_max = 10,
      append_info = { { epoch_num = 0, step_num = 0 } } }
    m1:train(1, ds, { callbacks = train.ModelCheckpoint("a", tmp, cfg), progress = false })
    -- the zoo: param_dict = load_checkpoint(pre_trained); has_trained_epoch/step from it;
    -- load_param_into_net; model.train(epoch_size - has_trained_epoch, ...) with
    -- append_info = [{"epoch_num": has_trained_epoch, "step_num": has_trained_step}]
    local d = spore.load_checkpoint(tmp .. "/a-1_3.ckpt")
    local e0, s0 = d.epoch_num:item(), d.step_num:item()
    assert.same({ 1, 3 }, { e0, s0 })
    local net, opt, m2 = make()
    local pnl = ckpt.load_param_into_net(m2.train_network, d)
    assert.same({}, pnl)
    assert.equal(3, opt:global_step())
    local cfg2 = train.CheckpointConfig { save_checkpoint_steps = 3, keep_checkpoint_max = 10,
      append_info = { { epoch_num = e0, step_num = s0 } } }
    m2:train(2 - e0, ds, { callbacks = train.ModelCheckpoint("b", tmp, cfg2), progress = false })
    local r = spore.load_checkpoint(tmp .. "/b-1_3.ckpt")
    assert.same({ 2, 6 }, { r.epoch_num:item(), r.step_num:item() })
    -- the resumed weights are MindSpore's after 2 uninterrupted epochs (zoo-2_3.ckpt)
    local want = Tr.zoo_ckpt.files[#Tr.zoo_ckpt.files]
    assert.equal("zoo-2_3.ckpt", want.file)
    close_tensor(net.weight.data:totable(), want.weight, "resumed weight")
    close_tensor(r["moments.weight"]:totable(), want["moments.weight"], "resumed moments.weight")
    assert.equal(want.global_step, r.global_step:item())
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
