-- train_model_spec.lua — Model:train/eval/predict with a real (small) model:
-- softmax regression (Dense-like forward, hand-written backward), sparse softmax
-- cross-entropy and plain SGD, trained on 2,000 real MNIST training images.
local spore = require("spore")
local H = spec_helper
local data = spore.data
local train = spore.train
local ffi = require("ffi")

---------------------------------------------------------------- the model
local function SoftmaxRegression(nin, nout)
  local net = { training = true }
  -- on the default device, as every network (SPORE_DEVICE=sim puts it on sim)
  local dev = spore.get_default_device()
  local W, b = spore.zeros({ nout, nin }):to(dev), spore.zeros({ nout }):to(dev)
  net.params = {
    { name = "fc.weight", data = W, requires_grad = true, grad = spore.zeros({ nout, nin }):to(dev) },
    { name = "fc.bias", data = b, requires_grad = true, grad = spore.zeros({ nout }):to(dev) },
  }
  function net:device() return dev end
  net.modes = {}
  function net:forward(x)
    self.modes[#self.modes + 1] = self.training
    local x2 = x:reshape(x:size(1), -1)
    return x2:matmul(W:t()) + b
  end
  function net:backward(x, g)
    local x2 = x:reshape(x:size(1), -1)
    self.params[1].grad:add_(g:t():matmul(x2))
    self.params[2].grad:add_(g:sum(1))
  end
  function net:zero_grad() for _, p in ipairs(self.params) do p.grad:zero_() end end
  function net:train() self.training = true return self end
  function net:eval() self.training = false return self end
  function net:parameters_and_names()
    local out = {}
    for i, p in ipairs(self.params) do out[i] = { p.name, p } end
    return out
  end
  function net:trainable_params() return self.params end
  return net
end

-- mean over rows of -log softmax(logits)[label]; backward = (softmax - onehot)/N
local function SoftmaxCE()
  local L = {}
  function L:forward(logits, labels)
    -- a host-side reference: logits and labels come to the host through explicit copies
    local dev = logits:device()
    local lg = logits:to("cpu"):contiguous()
    local n, k = lg:size(1), lg:size(2)
    local grad = spore.empty({ n, k })
    local p, g, y = lg:ptr(), grad:ptr(), labels:to("cpu"):contiguous():ptr()
    local total = 0
    for i = 0, n - 1 do
      local m = -math.huge
      for j = 0, k - 1 do m = math.max(m, p[i * k + j]) end
      local s = 0
      for j = 0, k - 1 do s = s + math.exp(p[i * k + j] - m) end
      total = total + (m + math.log(s) - p[i * k + y[i]])
      for j = 0, k - 1 do
        g[i * k + j] = (math.exp(p[i * k + j] - m) / s - (j == y[i] and 1 or 0)) / n
      end
    end
    self.grad = grad:to(dev)
    return total / n
  end
  function L:backward() return self.grad end
  return L
end

local function SGD(net, lr)
  local opt = { global_step = 0, lr = lr }
  function opt:step()
    for _, p in ipairs(net.params) do p.data:sub_(p.grad:mul(self.lr)) end
    self.global_step = self.global_step + 1
  end
  function opt:get_lr() return self.lr end
  function opt:get_global_step() return self.global_step end
  function opt:parameters_and_names() return net:parameters_and_names() end
  return opt
end

local RS = { data.vision.Rescale(1 / 255, 0) }

local function mnist_dir()
  local p, msg = H.fixture("mnist/train-images-idx3-ubyte.gz")
  if not p then return nil, msg end
  return (p:gsub("/train%-images%-idx3%-ubyte%.gz$", ""))
end

describe("Model on real MNIST", function()
  local dir, missing = mnist_dir()
  local net, loss, opt, model, test_ds, result

  setup(function()
    if not dir then return end
    net, loss = SoftmaxRegression(784, 10), SoftmaxCE()
    opt = SGD(net, 0.5)
    model = spore.Model(net, loss, opt, { metrics = { "accuracy", "top5", "loss" } })
    local train_ds = data.mnist(dir, { split = "train", num_samples = 2000, batch = 32, shuffle = true, seed = 1 })
    test_ds = data.mnist(dir, { split = "test", num_samples = 2000, batch = 100, shuffle = false })
    model:train(4, train_ds, { progress = false })
    result = model:eval(test_ds)
    if os.getenv("SPORE_VERBOSE") then print(string.format("softmax regression: accuracy %.4f top5 %.4f loss %.4f", result.accuracy, result.top5, result.loss)) end
  end)

  it("trains softmax regression on 2,000 images to test accuracy > 0.80", function()
    if not dir then pending(missing) return end
    assert.is_true(result.accuracy > 0.80, "accuracy " .. result.accuracy)
    assert.is_true(result.top5 >= result.accuracy and result.top5 > 0.95, "top5 " .. result.top5)
    assert.is_true(result.loss > 0 and result.loss < 0.8, "loss " .. result.loss)
    assert.equal(2000, result.samples)
    assert.equal(4 * 63, opt:get_global_step())
  end)

  it("eval's accuracy, top5 and loss equal a naive loop over the same predictions", function()
    if not dir then pending(missing) return end
    local correct, top5, lsum, n = 0, 0, 0, 0
    for x, y in test_ds:batches() do
      local logits = net:forward(x)
      lsum = lsum + loss:forward(logits, y) * x:size(1)
      for i = 1, x:size(1) do
        local row = logits:select(1, i):flat()
        local lab = y[i] + 1
        local best = 1
        for j = 2, #row do if row[j] > row[best] then best = j end end
        if best == lab then correct = correct + 1 end
        local rank = 0
        for j = 1, #row do if row[j] > row[lab] then rank = rank + 1 end end
        if rank < 5 then top5 = top5 + 1 end
        n = n + 1
      end
    end
    assert.equal(correct / n, result.accuracy)
    assert.equal(top5 / n, result.top5)
    assert.is_true(math.abs(lsum / n - result.loss) < 1e-9)
  end)

  it("eval runs the net in eval mode and restores training mode; predict too", function()
    if not dir then pending(missing) return end
    net:train()
    net.modes = {}
    model:eval(test_ds)
    for _, m in ipairs(net.modes) do assert.is_false(m) end
    assert.is_true(net.training)
    local x = test_ds:batches()()
    net.modes = {}
    local logits = model:predict(x)
    assert.same({ 100, 10 }, logits:shape())
    assert.same({ false }, net.modes)
    assert.is_true(net.training)
    net:eval()
    model:eval(test_ds)
    assert.is_false(net.training)
    net:train()
  end)
end)

describe("metrics", function()
  it("first maximum wins ties; one-hot labels are argmax-ed; topK", function()
    local M = train.Metrics.new({ "accuracy", "top2", "top5" })
    local logits = spore.tensor({ { 1, 3, 3, 0 }, { 2, 2, 2, 2 }, { 0, 1, 2, 3 } })
    M:update(logits, spore.tensor({ 1, 0, 1 }, "int32"))
    local r = M:eval()
    -- row 1: argmax 1 (first 3) → correct; row 2: argmax 0 → correct; row 3: argmax 3 ≠ 1
    assert.equal(2 / 3, r.accuracy)
    -- top2: row 3 label 1 ranks 3rd → miss; rows 1, 2 hit
    assert.equal(2 / 3, r.top2)
    assert.equal(1, r.top5)
    local M2 = train.Metrics.new({ "accuracy" })
    M2:update(logits, spore.tensor({ { 0, 1, 0, 0 }, { 0, 0, 1, 0 }, { 0, 0, 0, 1 } }))
    assert.equal(2 / 3, M2:eval().accuracy)
  end)
  it("agrees with a naive Lua count on random logits with ties (0-based labels, any label dtype)", function()
    spore.manual_seed(11)
    local N, K = 40, 6
    local logits = spore.rand({ N, K }, 0, 3):to("int32"):to("float32") -- small ints: many ties
    local labels = spore.rand({ N }, 0, K):to("int64")
    local lt, lb = logits:totable(), labels:totable()
    local acc, top3 = 0, 0
    for i = 1, N do
      local row, y = lt[i], lb[i] + 1 -- Lua position of the 0-based label
      local best = 1
      for j = 2, K do if row[j] > row[best] then best = j end end
      if best == y then acc = acc + 1 end
      local rank = 0
      for j = 1, K do if row[j] > row[y] or (row[j] == row[y] and j < y) then rank = rank + 1 end end
      if rank < 3 then top3 = top3 + 1 end
    end
    for _, dt in ipairs({ "int64", "int32", "float32" }) do
      local M = train.Metrics.new({ "accuracy", "top3", "top9" })
      M:update(logits, labels:to(dt))
      local r = M:eval()
      assert.equal(acc / N, r.accuracy)
      assert.equal(top3 / N, r.top3)
      assert.equal(1, r.top9) -- K > classes counts every sample
    end
    -- logits:argmax(2) compares with the labels with no +1/-1
    assert.equal(acc, logits:argmax(2):count_equal(labels))
    -- logits on the sim device (its memory is not host-addressable): same counts, cpu labels moved over
    local Ms = train.Metrics.new({ "accuracy", "top3" })
    Ms:update(logits:to("sim"), labels)
    assert.equal(acc / N, Ms:eval().accuracy)
    assert.equal(top3 / N, Ms:eval().top3)
  end)
end)

describe("Model:train callbacks and resuming", function()
  local imgs, labs
  before_each(function()
    spore.manual_seed(3)
    imgs = spore.rand({ 50, 2, 2 }, 0, 255):to("uint8")
    labs = spore.arange(0, 50, 1, "int32"):div(5):to("int32")
  end)

  it("LossMonitor prints MindSpore's line with the step within the epoch", function()
    local lines = {}
    local ds = data.from_tensors(imgs, labs, { batch = 8, shuffle = false, transforms = RS }) -- 7 batches
    local net = SoftmaxRegression(4, 10)
    local model = spore.Model(net, SoftmaxCE(), SGD(net, 0.1))
    model:train(2, ds, { progress = false, callbacks = { train.LossMonitor(3, { print = function(l) lines[#lines + 1] = l end }) } })
    assert.equal(4, #lines) -- global steps 3, 6, 9, 12 → epoch 1 step 3, 6; epoch 2 step 2, 5
    assert.matches("^epoch: 1 step: 3, loss is %d+%.%d+$", lines[1])
    assert.matches("^epoch: 1 step: 6, loss is ", lines[2])
    assert.matches("^epoch: 2 step: 2, loss is ", lines[3])
    assert.matches("^epoch: 2 step: 5, loss is ", lines[4])
    assert.equal("2.3025851", train.format_loss(math.log(10)))
    assert.equal("0.5", train.format_loss(0.5))
    assert.equal("nan", train.format_loss(0 / 0))
  end)

  it("LossMonitor stops training with an error on a NaN or Inf loss (unless allow_nonfinite)", function()
    -- Model:train's own check stops a NaN loss first (training_notices_spec); the callback
    -- keeps MindSpore's message for any other loop that calls it
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge }) do
      local lines = {}
      local mon = train.LossMonitor(1, { print = function(l) lines[#lines + 1] = l end })
      local ctx = { net_outputs = 1.5, cur_step_num = 7, batch_num = 4, cur_epoch_num = 2 }
      mon:on_train_step_end(ctx)
      assert.same({ "epoch: 2 step: 3, loss is 1.5" }, lines)
      ctx.net_outputs, ctx.cur_step_num = bad, 8
      local ok, err = pcall(mon.on_train_step_end, mon, ctx)
      assert.is_false(ok)
      assert.equal("In epoch: 2 step: 4, loss is NAN or INF, training process cannot continue, terminating training.", err)
      -- training that allows non-finite values: printed, not fatal
      ctx.allow_nonfinite = true
      mon:on_train_step_end(ctx)
      assert.equal(2, #lines)
      assert.matches("^epoch: 2 step: 4, loss is %-?[naif]+$", lines[2])
    end
  end)

  it("TimeMonitor prints epoch time and per step time", function()
    local lines = {}
    local ds = data.from_tensors(imgs, labs, { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(2, ds, { progress = false,
      callbacks = { train.TimeMonitor({ print = function(l) lines[#lines + 1] = l end }) } })
    assert.equal(2, #lines)
    assert.matches("^Train epoch time: %d+%.%d%d%d ms, per step time: %d+%.%d%d%d ms$", lines[1])
  end)

  it("initial_epoch continues numbering and the optimizer's global_step; steps caps an epoch", function()
    local lines = {}
    local ds = data.from_tensors(imgs, labs, { batch = 10, transforms = RS }) -- 5 batches
    local net = SoftmaxRegression(4, 10)
    local opt = SGD(net, 0.1)
    opt.global_step = 10 -- as if restored from a checkpoint after 2 epochs
    local model = spore.Model(net, SoftmaxCE(), opt)
    local ctx = model:train(3, ds, { progress = false, initial_epoch = 2,
      callbacks = { train.LossMonitor(1, { print = function(l) lines[#lines + 1] = l end }) } })
    assert.equal(5, #lines)
    assert.matches("^epoch: 3 step: 1,", lines[1])
    assert.matches("^epoch: 3 step: 5,", lines[5])
    -- MindSpore's cb_params: cur_step_num counts this call's steps; global_step continues
    assert.equal(5, ctx.cur_step_num)
    assert.equal(1, ctx.epoch_num)
    assert.equal(15, opt:get_global_step())
    local ctx2 = model:train(2, ds, { progress = false, steps = 2 })
    assert.equal(4, ctx2.cur_step_num)
    assert.equal(19, opt:get_global_step())
  end)

  it("a callback can request a stop", function()
    local ds = data.from_tensors(imgs, labs, { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    local ctx = spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(5, ds, { progress = false,
      callbacks = { function(c) if c.cur_step_num == 7 then c:request_stop() end end } })
    assert.equal(7, ctx.cur_step_num)
    assert.equal(2, ctx.cur_epoch_num)
  end)
end)

describe("ModelCheckpoint", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  local function listing(dir)
    local out = {}
    for f in require("lfs").dir(dir) do if f:match("%.ckpt$") then out[#out + 1] = f end end
    table.sort(out)
    return out
  end

  local function run(prefix, cfg, epochs, saves)
    spore.manual_seed(5)
    local imgs = spore.rand({ 30, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 30 }, "int32"), { batch = 10, transforms = RS }) -- 3 steps/epoch
    local net = SoftmaxRegression(4, 10)
    local opt = SGD(net, 0.1)
    cfg.saver = function(obj, path, o)
      saves[#saves + 1] = { obj = obj, path = path, append = o.append_dict, opt = opt }
      local f = assert(io.open(path, "wb")); f:write("x"); f:close()
    end
    local cb = train.ModelCheckpoint(prefix, tmp .. "/ckpt", train.CheckpointConfig(cfg))
    spore.Model(net, SoftmaxCE(), opt):train(epochs, ds, { progress = false, callbacks = { cb } })
    return cb
  end

  it("names prefix-EPOCH_STEP.ckpt, saves the optimizer with append_info, keeps the newest N", function()
    local saves = {}
    local cb = run("lenet", { save_checkpoint_steps = 2, keep_checkpoint_max = 3, append_info = { "epoch_num", "step_num" } }, 3, saves)
    -- steps 2,4,6,8 → (1,2) (2,1) (2,3) (3,2); final save at step 9 → (3,3)
    local names = {}
    for i, s in ipairs(saves) do names[i] = s.path:match("[^/]+$") end
    assert.same({ "lenet-1_2.ckpt", "lenet-2_1.ckpt", "lenet-2_3.ckpt", "lenet-3_2.ckpt", "lenet-3_3.ckpt" }, names)
    -- the training state: every network parameter, then the optimizer's own state
    local names_saved = {}
    for i, kv in ipairs(saves[1].obj:parameters_and_names()) do names_saved[i] = kv[1] end
    -- (this spec's SGD has no state: the network's parameters, the trained ones first)
    local want = { "fc.weight", "fc.bias" }
    assert.same(want, names_saved)
    assert.same({ { "epoch_num", 2 }, { "step_num", 4 }, epoch_num = 2, step_num = 4 }, saves[2].append)
    assert.same({ "lenet-2_3.ckpt", "lenet-3_2.ckpt", "lenet-3_3.ckpt" }, listing(tmp .. "/ckpt"))
    assert.equal(tmp .. "/ckpt/lenet-3_3.ckpt", cb.latest)
  end)

  it("an existing prefix becomes prefix_1, then prefix_2", function()
    local s1, s2, s3 = {}, {}, {}
    run("m", { save_checkpoint_steps = 3, keep_checkpoint_max = 10 }, 1, s1)
    local cb2 = run("m", { save_checkpoint_steps = 3, keep_checkpoint_max = 10 }, 1, s2)
    local cb3 = run("m", { save_checkpoint_steps = 3, keep_checkpoint_max = 10 }, 1, s3)
    assert.equal("m_1", cb2.prefix)
    assert.equal("m_2", cb3.prefix)
    assert.same({ "m-1_3.ckpt", "m_1-1_3.ckpt", "m_2-1_3.ckpt" }, listing(tmp .. "/ckpt"))
    assert.equal("mx", train.callbacks.unique_prefix(tmp .. "/ckpt", "mx"))
  end)

  it("a failed save keeps the previous checkpoint (keep_checkpoint_max = 1; issue #8, b3)", function()
    local saves, n = {}, 0
    local imgs = spore.rand({ 30, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 30 }, "int32"), { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    local cb = train.ModelCheckpoint("f", tmp, train.CheckpointConfig({ save_checkpoint_steps = 1, keep_checkpoint_max = 1,
      saver = function(_, path)
        n = n + 1
        if n == 3 then error("disk full (injected)") end
        saves[#saves + 1] = path
        local f = assert(io.open(path, "wb")); f:write("x"); f:close()
      end }))
    local ok, err = pcall(function()
      spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(1, ds, { progress = false, callbacks = { cb } })
    end)
    assert.is_false(ok)
    assert.matches("disk full", err)
    assert.same({ "f-1_2.ckpt" }, listing(tmp)) -- step 1's file went after step 2's was complete
  end)

  it("a failed real save (target path is a directory) keeps the previous checkpoint", function()
    local imgs = spore.rand({ 30, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 30 }, "int32"), { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    local cb = train.ModelCheckpoint("d", tmp, train.CheckpointConfig({ save_checkpoint_steps = 1, keep_checkpoint_max = 1 }))
    assert(require("lfs").mkdir(tmp .. "/d-1_2.ckpt")) -- the second save cannot rename onto it
    local f = assert(io.open(tmp .. "/d-1_2.ckpt/keep", "wb")); f:close()
    local ok = pcall(function()
      spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(1, ds, { progress = false, callbacks = { cb } })
    end)
    assert.is_false(ok)
    local d = spore.load_checkpoint(tmp .. "/d-1_1.ckpt") -- still there and readable
    assert.is_true(#spore.ckpt.keys(d) > 0)
    assert.is_nil(io.open(tmp .. "/d-1_2.ckpt.tmp", "rb")) -- the writer cleaned up its temporary
  end)

  it("writes real checkpoints through spore.save_checkpoint (network + optimizer state)", function()
    local ok = pcall(require, "spore.ckpt")
    if not ok then pending("spore.ckpt is not available in this tree yet: ModelCheckpoint file writing untested") return end
    local imgs = spore.rand({ 20, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 20 }, "int32"), { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    local cb = train.ModelCheckpoint("real", tmp, train.CheckpointConfig({ save_checkpoint_steps = 2 }))
    spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(1, ds, { progress = false, callbacks = { cb } })
    local f = io.open(tmp .. "/real-1_2.ckpt", "rb")
    assert.is_truthy(f)
    if f then f:close() end
  end)
end)

describe("ProgressBar and resumed checkpoint names", function()
  it("ProgressBar draws one status line (progress over the run, ETA, images/s, loss), erased at the end", function()
    local buf = {}
    local out = { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end,
      flush = function() end }
    local imgs = spore.rand({ 40, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 40 }, "int32"), { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(2, ds, { progress = false,
      callbacks = { train.ProgressBar({ out = out, interval = 0 }) } })
    local text = table.concat(buf)
    assert.matches("\r\27%[Kepoch 1/2 %[=+%s*%] 4/8  ETA %d:%d%d:%d%d  %d+ img/s  loss [%d%.]+", text)
    assert.matches("\r\27%[Kepoch 2/2 %[================%] 8/8  ETA 0:00:00  %d+ img/s  loss [%d%.]+", text)
    assert.matches("1/8", text)
    assert.is_nil(text:find("\n", 1, true), "a status line never ends a line")
    assert.matches("\r\27%[K$", text) -- erased at the end
    assert.is_false(require("spore.train.callbacks").bar_active)
  end)

  it("a resumed run (initial_epoch) names files by the continued epoch and step", function()
    local tmp = H.tmpdir()
    local saves = {}
    local imgs = spore.rand({ 30, 2, 2 }, 0, 255):to("uint8")
    local ds = data.from_tensors(imgs, spore.zeros({ 30 }, "int32"), { batch = 10, transforms = RS })
    local net = SoftmaxRegression(4, 10)
    local cb = train.ModelCheckpoint("r", tmp, train.CheckpointConfig({ save_checkpoint_steps = 3,
      append_info = { "epoch_num", "step_num" },
      saver = function(_, path, o) saves[#saves + 1] = { path:match("[^/]+$"), o.append_dict.step_num } end }))
    spore.Model(net, SoftmaxCE(), SGD(net, 0.1)):train(4, ds, { progress = false, initial_epoch = 2, callbacks = { cb } })
    -- as MindSpore 2.10 (gen_ms_fidelity_model.py): cur_step_num restarts at 0 in a resumed
    -- run, so step_num counts this run's steps (the zoo passes the trained steps in the dict form)
    assert.same({ { "r-3_3.ckpt", 3 }, { "r-4_3.ckpt", 6 } }, saves)
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)

describe("memory", function()
  it("2,000 batches of the tutorial pipeline keep RSS and engine memory flat", function()
    local p, msg = H.fixture("mnist/t10k-images-idx3-ubyte.gz")
    if not p then pending(msg) return end
    local dir = p:gsub("/t10k%-images%-idx3%-ubyte%.gz$", "")
    local ds = data.mnist_tutorial(dir, "test", { shuffle = true, ["repeat"] = 7 }) -- 313 * 7 = 2191 batches
    local n = 0
    local rss0, live0
    for x, y in ds:batches() do
      n = n + 1
      if n == 100 then collectgarbage("collect"); rss0, live0 = H.rss(), spore.mem_stats().live end
      if n == 2100 then break end
    end
    collectgarbage("collect")
    local grew = H.rss() - rss0
    -- under AddressSanitizer freed blocks sit in its quarantine, so RSS says nothing there
    if not (os.getenv("LD_PRELOAD") or ""):find("asan") then
      assert.is_true(grew < 4 * 1024 * 1024, "RSS grew by " .. grew .. " bytes")
    end
    -- a leak shows as growth; engine memory may also fall during the loop, when an OpenMP
    -- worker that packed bf16 operands earlier in this process exits and its per-thread
    -- workspace is released with it (seen once in CI: 8 MB less, after the conv-kernel spec)
    local live = spore.mem_stats().live
    assert.is_true(live <= live0, ("engine memory grew by %d bytes"):format(live - live0))
  end)
end)
