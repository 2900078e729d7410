-- train_options_spec.lua — every options table of Model, its calls, the callbacks, the
-- metrics and CheckpointConfig is checked: an unknown key names the nearest known one, a
-- MindSpore key spore lacks is refused by name; CheckpointConfig's encryption, crc, format,
-- exception_save and time options do what MindSpore's do.
local spore = require("spore")
local H = spec_helper
local train, nn = spore.train, spore.nn
local ckpt = spore.ckpt

local function dataset(n, batch)
  local ds = { name = "opts" }
  function ds:size() return n end
  function ds:num_batches() return math.ceil(n / batch) end
  function ds:batches()
    local i = 0
    return function()
      if i >= n then return nil end
      local x, y = {}, {}
      for k = i + 1, math.min(n, i + batch) do x[#x + 1] = { k / n, -k / n, 0.5, 1 }; y[#y + 1] = k % 3 end
      i = math.min(n, i + batch)
      return spore.tensor(x, "float32"):to(spore.get_default_device()), spore.tensor(y, "int32")
    end
  end
  return ds
end
local function model(opts)
  local net = nn.Dense(4, 3)
  local opt = spore.optim.Momentum(net:trainable_params(), 0.1, 0.9)
  return spore.Model(net, nn.SoftmaxCrossEntropyWithLogits(true, "mean"), opt, opts), net, opt
end
local function err(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("options are never ignored", function()
  local ds = dataset(8, 4)
  it("Model, train, fit, eval, predict", function()
    assert.matches("spore.Model: unknown option 'metric' %(did you mean 'metrics'%?%)", err(model, { metric = { "acc" } }))
    assert.matches("loss_scale_manager must be a FixedLossScaleManager or DynamicLossScaleManager",
      err(model, { loss_scale_manager = {} }))
    assert.matches("amp_level 'O3' is MindSpore's, but spore implements amp_level 'O0' and 'O2'", err(model, { amp_level = "O3" }))
    assert.matches("amp_level 'O1' is MindSpore's", err(model, { amp_level = "O1" }))
    assert.matches("amp_level must be one of", err(model, { amp_level = "O7" }))
    assert.matches("option 'eval_network' is MindSpore's", err(model, { eval_network = {} }))
    local m = model()
    assert.matches("Model:train: unknown option 'callback' %(did you mean 'callbacks'%?%)",
      err(m.train, m, 1, ds, { callback = {} }))
    assert.matches("option 'sink_size' is MindSpore's", err(m.train, m, 1, ds, { sink_size = 2 }))
    assert.matches("Model:fit: unknown option 'valid_frequence' %(did you mean 'valid_frequency'%?%)",
      err(m.fit, m, 1, ds, ds, { valid_frequence = 1 }))
    assert.matches("Model:eval: unknown option 'callback'", err(m.eval, m, ds, { callback = {} }))
    assert.matches("Model:predict: option 'backend' is MindSpore's", err(m.predict, m, spore.zeros({ 1, 4 }), { backend = "lite" }))
    assert.matches("must be bigger than parameter 'initial_epoch'", err(m.train, m, 2, ds, { initial_epoch = 2, progress = false }))
  end)
  it("callbacks, CheckpointConfig, ModelCheckpoint and metrics", function()
    assert.matches("CheckpointConfig: unknown option 'keep_checkpoint_maximum' %(did you mean 'keep_checkpoint_max'%?%)",
      err(train.CheckpointConfig, { keep_checkpoint_maximum = 3 }))
    assert.matches("option 'async_save' is MindSpore's", err(train.CheckpointConfig, { async_save = true }))
    assert.matches("option 'incremental' is MindSpore's", err(train.CheckpointConfig, { incremental = true }))
    assert.matches("can't be all None or 0", err(train.CheckpointConfig, { save_checkpoint_steps = 0, keep_checkpoint_max = 0 }))
    assert.matches("when format is 'safetensors'", err(train.CheckpointConfig, { format = "safetensors", crc_check = true }))
    assert.matches("a AES%-GCM enc_key must be 16, 24 or 32 bytes, got 5", err(train.CheckpointConfig, { enc_key = "short" }))
    assert.matches("append_info%[1%] must be \"epoch_num\" or \"step_num\"", err(train.CheckpointConfig, { append_info = { "epoch" } }))
    assert.matches("ModelCheckpoint: unknown option 'directori' %(did you mean 'directory'%?%)", err(train.ModelCheckpoint, { directori = "x" }))
    assert.matches("a callable prefix or directory is MindSpore's", err(train.ModelCheckpoint, function() return "p" end))
    assert.matches("EarlyStopping: unknown option 'patients' %(did you mean 'patience'%?%)", err(train.EarlyStopping, { patients = 2 }))
    assert.matches("ReduceLROnPlateau: unknown option 'min_lr_' %(did you mean 'min_lr'%?%)", err(train.ReduceLROnPlateau, { min_lr_ = 0 }))
    assert.matches("TimeMonitor: unknown option 'datatime' %(did you mean 'data_time'%?%)", err(train.TimeMonitor, { datatime = true }))
    assert.matches("LossMonitor: unknown option 'per_print_time' %(did you mean 'per_print_times'%?%)",
      err(train.LossMonitor, { per_print_time = 1 }))
    assert.matches("ConfusionMatrix: unknown option 'num_class' %(did you mean 'num_classes'%?%)",
      err(train.ConfusionMatrix, { num_class = 3 }))
    assert.matches("unknown metric 'precison' %(did you mean 'precision'%?%)", err(model, { metrics = { precison = true } }))
  end)
end)

describe("CheckpointConfig's options", function()
  local ds = dataset(8, 4)
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("enc_key writes an encrypted file (MindSpore's block format) that reads back only with the key", function()
    for _, c in ipairs({ { "AES-GCM", "0123456789abcdef", "\216\94\58\127" }, { "AES-CBC", string.rep("k", 32), "\217\94\58\127" },
      { "SM4-CBC", "0123456789abcdef", "\218\94\58\127" } }) do
      local m, net = model()
      local cfg = train.CheckpointConfig { save_checkpoint_steps = 2, enc_key = c[2], enc_mode = c[1], append_info = { "epoch_num" } }
      local cb = train.ModelCheckpoint(c[1], tmp, cfg)
      m:train(1, ds, { callbacks = cb, progress = false })
      local bytes = H.read_file(cb.latest)
      assert.equal(c[3], bytes:sub(1, 4), c[1] .. " magic")
      assert.is_nil(bytes:find("moments.weight", 1, true), c[1] .. ": a parameter name is in plaintext")
      local d = spore.load_checkpoint(cb.latest, { dec_key = c[2], dec_mode = c[1] })
      assert.equal(0, H.max_abs_diff(d.weight, net.weight.data:to("cpu")))
      assert.equal(1, d.epoch_num:item())
      assert.has_error(function() spore.load_checkpoint(cb.latest) end)
    end
  end)

  it("crc_check writes MindSpore's trailer; format = safetensors writes .safetensors", function()
    local m = model()
    local cb = train.ModelCheckpoint("c", tmp, train.CheckpointConfig { crc_check = true, save_checkpoint_steps = 2 })
    m:train(1, ds, { callbacks = cb, progress = false })
    assert.is_true(ckpt.read_raw(cb.latest).crc.present)
    local cb2 = train.ModelCheckpoint("s", tmp, train.CheckpointConfig { format = "safetensors", save_checkpoint_steps = 2 })
    model():train(1, ds, { callbacks = cb2, progress = false })
    assert.matches("/s%-1_2%.safetensors$", cb2.latest)
    -- weight, bias, global_step, learning_rate, momentum, moments.weight, moments.bias
    assert.equal(7, #ckpt.keys(spore.load_checkpoint(cb2.latest)))
  end)

  it("exception_save writes <prefix>-E_S_breakpoint.ckpt with append_info, then the error goes on", function()
    local m = model()
    local cfg = train.CheckpointConfig { save_checkpoint_steps = 100, exception_save = true,
      append_info = { { epoch_num = 5, step_num = 50 } } }
    local cb = train.ModelCheckpoint("e", tmp, cfg)
    local boom = { on_train_step_end = function(_, ctx) if ctx.cur_step_num == 3 then error("boom", 0) end end }
    local e = err(m.train, m, 3, ds, { callbacks = { cb, boom }, progress = false })
    assert.equal("boom", e)
    -- step 3 is epoch 2, step 1 in it; step_num gets the step in the epoch, as MindSpore's
    assert.equal(tmp .. "/e-2_1_breakpoint.ckpt", cb.breakpoint)
    local d = spore.load_checkpoint(cb.breakpoint)
    assert.equal(7, d.epoch_num:item())
    assert.equal(51, d.step_num:item())
  end)

  it("save_checkpoint_seconds saves by time when save_checkpoint_steps = 0; keep_checkpoint_max = 0 keeps per minutes", function()
    local cfg = train.CheckpointConfig { save_checkpoint_steps = 0, save_checkpoint_seconds = 3600,
      keep_checkpoint_max = 0, keep_checkpoint_per_n_minutes = 1 }
    assert.equal(3600, cfg.save_checkpoint_seconds)
    assert.equal(1, cfg.keep_checkpoint_per_n_minutes)
    local m = model()
    local cb = train.ModelCheckpoint("t", tmp, cfg)
    m:train(2, ds, { callbacks = cb, progress = false })
    -- no step is an hour after the last save: only the final save
    assert.same({ tmp .. "/t-2_2.ckpt" }, cb.saved)
    local cfg2 = train.CheckpointConfig { save_checkpoint_steps = 1, keep_checkpoint_max = 0, keep_checkpoint_per_n_minutes = 1 }
    local cb2 = train.ModelCheckpoint("k", tmp, cfg2)
    model():train(2, ds, { callbacks = cb2, progress = false })
    -- every save within the minute deletes the earlier ones written in it except the oldest
    local left = {}
    for f in require("lfs").dir(tmp) do if f:match("^k%-") then left[#left + 1] = f end end
    table.sort(left)
    assert.same({ "k-1_1.ckpt", "k-2_2.ckpt" }, left)
  end)
end)

describe("callbacks", function()
  local ds = dataset(8, 4)
  it("a single callback object (not a list); old-style method names; TimeMonitor data_time", function()
    local m = model()
    local lines = {}
    local seen = {}
    local legacy = { step_end = function(_, ctx) seen[#seen + 1] = ctx.cur_step_num end }
    m:train(2, ds, { callbacks = legacy, progress = false })
    assert.same({ 1, 2, 3, 4 }, seen)
    local tm = train.TimeMonitor(nil, true, { print = function(l) lines[#lines + 1] = l end })
    m:train(1, ds, { callbacks = tm, progress = false })
    assert.matches("^Train epoch time: %d+%.%d%d%d ms, per step time: %d+%.%d%d%d ms %(data time: %d+%.%d%d%d ms%)$", lines[1])
    -- in fit, TimeMonitor also times the evaluation
    lines = {}
    model({ metrics = { "acc" } }):fit(1, ds, ds, { callbacks = tm, progress = false })
    assert.matches("^Eval epoch time:", lines[1])
    assert.matches("^Train epoch time:", lines[2])
  end)
  it("Model:eval runs eval callbacks", function()
    local m = model({ metrics = { acc = true } })
    local hooks = {}
    local cb = {}
    for _, h in ipairs({ "on_eval_begin", "on_eval_epoch_begin", "on_eval_step_begin", "on_eval_step_end",
      "on_eval_epoch_end", "on_eval_end" }) do cb[h] = function() hooks[#hooks + 1] = h end end
    local r = m:eval(ds, { callbacks = cb })
    assert.same({ "on_eval_begin", "on_eval_epoch_begin", "on_eval_step_begin", "on_eval_step_end", "on_eval_step_begin",
      "on_eval_step_end", "on_eval_epoch_end", "on_eval_end" }, hooks)
    assert.is_number(r.acc)
  end)
end)
