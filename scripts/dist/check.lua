-- check.lua MODE OUT [args] — spore.dist end-to-end checks, run under mpirun by spec/dist_spec.lua
-- (and by hand). LeNet5 on a synthetic, seeded 10-class dataset of 28×28 images (Resize 32,
-- Rescale, HWC2CHW, as the MNIST tutorial), Momentum(0.01, 0.9).
--   equiv OUT BATCH STEPS   train STEPS steps with BATCH per rank; rank 0 saves OUT/final.ckpt
--                           (run with -np 2 and BATCH b, then -np 1 and 2b: the same parameters)
--   shard OUT STEPS         train with shard_optimizer, ModelCheckpoint saving every step into OUT
--                           (a sharded checkpoint), then rank 0 writes OUT/ref.ckpt: the full
--                           state gathered by broadcasting each state tensor from its owner
--   load OUT INDEX [resume] load a sharded (or ordinary) checkpoint into net + optimizer on every
--                           rank, compare every tensor bit for bit with the file, save OUT (rank 0);
--                           with resume, then train 3 more steps (the state sharded over this run)
--   mem MODEL [OPT]         optimizer state per rank (MODEL: lenet5 | resnet18, OPT: momentum |
--                           adam) and the engine's live bytes: one JSON line per rank
--   hang OUT STEP           rank 1 stops itself (SIGSTOP) at step STEP; the others must fail
--   syncbn OUT BATCH STEPS  a small Conv-BatchNorm net with sync_bn: rank 0 saves OUT/final.ckpt
--                           (-np 2 at BATCH b against -np 1 at 2b: the same weights and statistics)
--   eval OUT                accuracy/loss of Model:eval on the synthetic test set (reduced over ranks)
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local dist = require("spore.dist")
local json = require("spore.json")
local mode, out = arg[1], arg[2]
if not mode or not out then error("usage: check.lua equiv|shard|load|hang|eval OUT [args]", 0) end

local timeout = tonumber(os.getenv("SPORE_DIST_TIMEOUT") or "") or 30
dist.init({ timeout = timeout, shard_optimizer = (mode == "shard" or mode == "load" or mode == "mem") and dist.launched() and true or false,
  bucket_mb = 0.05, sync_bn = mode == "syncbn" and os.getenv("SPORE_DIST_CHECK_LOCAL_BN") == nil })

-- SPORE_DIST_CHECK_DEVICE=gpu: the network and batches on spore.dist.local_device() (the GPU
-- path: NCCL when this libspore_dist.so has it); cpu (default): the default device
local DEV = os.getenv("SPORE_DIST_CHECK_DEVICE")
if DEV == "gpu" then DEV = dist.local_device() elseif DEV == "cpu" or DEV == "" then DEV = nil end

local function synthetic(n, seed, batch, shuffle)
  spore.manual_seed(seed)
  local imgs = (spore.rand({ n, 28, 28 }) * 255):to("uint8")
  local labels = spore.zeros({ n }, "int32")
  -- a learnable label: the brightest quarter of the image
  for i = 1, n do labels[i] = (i * 7 + seed) % 10 end
  local tf = spore.data.transforms
  return spore.data.Dataset(imgs, labels, { batch = batch, shuffle = shuffle, seed = 3, drop_remainder = true,
    transforms = { tf.Resize({ 32, 32 }), tf.Rescale(1 / 255, 0), tf.HWC2CHW() }, device = DEV })
end

local function build()
  spore.manual_seed(1 + dist.rank) -- different on each rank: the broadcast from rank 0 must fix it
  local net = spore.models.lenet5({ num_class = 10 })
  if DEV then net:to(DEV) end
  local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" })
  return net, opt, spore.Model(net, loss, opt, { metrics = { "accuracy", "loss" } })
end

local function save_full(net, opt, path)
  local tn = spore.Model.TrainNetwork(net, opt)
  spore.save_checkpoint(tn, path)
end

-- the full training state into path (rank 0): optimizer state sharded over the ranks is
-- broadcast from its owner; where this rank holds none, into a full-size tensor put in place
-- for the save and then taken out again
local function save_gathered(net, opt, path)
  local away = {}
  for _, kv in ipairs(spore.Model.TrainNetwork(net, opt):parameters_and_names()) do
    local p = kv[2]
    local owner = rawget(p, "shard_rank")
    if owner ~= nil then
      if p.data:numel() == 0 then
        away[#away + 1] = { p, p.data }
        p.data = spore.zeros(rawget(p, "shard_shape")):to(p.data:device())
      end
      dist.broadcast(p.data, owner, "gather of " .. kv[1])
    end
  end
  if dist.rank == 0 then save_full(net, opt, path) end
  for _, a in ipairs(away) do a[1].data = a[2] end
end

if mode == "equiv" then
  local batch, steps = tonumber(arg[3]), tonumber(arg[4])
  local net, opt, model = build()
  model:train(1, synthetic(512, 5, batch, true), { steps = steps, progress = false })
  if dist.rank == 0 then
    save_full(net, opt, out .. "/final.ckpt")
    print(json.encode({ backend = dist.comm, device = opt.buckets[1].device, ranks = dist.size }))
  end
elseif mode == "shard" then
  local steps = tonumber(arg[3])
  local net, opt, model = build()
  local cb = spore.train.ModelCheckpoint("lenet", out, spore.train.CheckpointConfig({ save_checkpoint_steps = steps,
    keep_checkpoint_max = 2, append_info = { "epoch_num", "step_num" } }))
  model:train(1, synthetic(512, 5, 8, true), { steps = steps, progress = false, callbacks = { cb } })
  -- the reference: every state tensor from the rank that owns it
  local sh = dist.shard_of and dist.shard_of(model)
  save_gathered(net, opt, out .. "/ref.ckpt")
  if dist.rank == 0 then
    print(json.encode({ index = cb.saver and sh.latest or cb.latest, slot_bytes = opt:slot_bytes() + 0 }))
  end
elseif mode == "load" then
  local idx = arg[3]
  local net, opt, model = build()
  local M = require("spore.ckpt.merge")
  local d = M.is_index(idx) and M.load(idx) or spore.load_checkpoint(idx)
  spore.load_param_into_net(net, d, { strict_load = false })
  spore.load_param_into_net(opt, d, { strict_load = false })
  local bad = {}
  local n, elsewhere = 0, 0
  for _, kv in ipairs(spore.Model.TrainNetwork(net, opt):parameters_and_names()) do
    local v = d[kv[1]]
    if rawget(kv[2], "shard_owner") and kv[2].data:numel() == 0 then
      elsewhere = elsewhere + 1 -- another rank's share of the optimizer state (shard_optimizer)
    elseif v == nil then bad[#bad + 1] = kv[1] .. " (not in the file)"
    else
      n = n + 1
      local a = kv[2].data:to("cpu")
      -- same dtype and every element equal (count_equal: NaN equals nothing, so NaN fails too)
      if a:dtype() ~= v:dtype() or a:numel() ~= v:numel() or a:count_equal(v:reshape(a:shape())) ~= a:numel() then
        bad[#bad + 1] = kv[1]
      end
    end
  end
  save_gathered(net, opt, out)
  print(json.encode({ rank = dist.rank, compared = n, different = bad, held_elsewhere = elsewhere,
    state_bytes = opt:slot_bytes() + 0 }))
  if arg[4] == "resume" then
    -- go on training from the loaded state (sharded over this run's rank count)
    model:train(1, synthetic(512, 5, 8, true), { steps = 3, progress = false })
    print(json.encode({ rank = dist.rank, resumed = opt:global_step(), state_bytes = opt:slot_bytes() }))
  end
elseif mode == "mem" then
  -- optimizer state per rank: OUT is a model (lenet5 | resnet18), arg 3 the optimizer
  -- (momentum | adam). The optimizer is made after spore.dist.init with shard_optimizer, so
  -- it allocates this rank's share only (spore.dist.shard.plan). One JSON line per rank: the
  -- slot bytes held, the unsharded figure, the engine's live bytes (spore.mem_stats) once the
  -- network and optimizer exist.
  local which, algo = out, arg[3] or "momentum"
  spore.manual_seed(1)
  local net = which == "resnet18" and spore.models.resnet18({ class_num = 10 }) or spore.models.lenet5({ num_class = 10 })
  local opt = algo == "adam" and spore.optim.Adam(net:trainable_params(), 1e-3)
    or spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
  local model = spore.Model(net, spore.nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" }), opt)
  collectgarbage(); collectgarbage()
  local live = spore.mem_stats().live
  local sh = require("spore.dist.shard").new(model, dist)
  local line = json.encode({ rank = dist.rank, size = dist.size, model = which, optimizer = algo,
    full_state_bytes = sh.full_bytes, state_bytes = opt:slot_bytes(), planned = rawget(opt, "_shard_plan") ~= nil,
    live = live })
  for r = 0, dist.size - 1 do
    if r == dist.rank then print(line); io.stdout:flush() end
    dist.barrier("mem print")
  end
elseif mode == "hang" then
  local at = tonumber(arg[3])
  local net, opt, model = build()
  local stopper = { on_train_step_begin = function(_, ctx)
    if dist.rank == 1 and ctx.cur_step_num == at then
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      io.stderr:write("check.lua: rank 1 stops itself (SIGSTOP) at step " .. at .. "\n")
      io.stderr:flush()
      os.execute("kill -STOP " .. pid)
    end
  end }
  local ok, err = pcall(model.train, model, 1, synthetic(512, 5, 8, true), { steps = 60, progress = false, callbacks = { stopper } })
  if not ok then
    io.stderr:write("check.lua: rank " .. dist.rank .. ": " .. tostring(err) .. "\n")
    io.stderr:flush()
    dist.lib().abort(3)
  end
elseif mode == "syncbn" then
  local batch, steps = tonumber(arg[3]), tonumber(arg[4])
  spore.manual_seed(1)
  local nn = spore.nn
  local net = nn.SequentialCell({ nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, { stride = 2 }),
    nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dense(4 * 16 * 16, 10) })
  local opt = spore.optim.Momentum(net:trainable_params(), 0.05, 0.9)
  local loss = nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" })
  local model = spore.Model(net, loss, opt)
  model:train(1, synthetic(256, 5, batch, true), { steps = steps, progress = false })
  if dist.rank == 0 then save_full(net, opt, out .. "/final.ckpt") end
elseif mode == "eval" then
  local net, opt, model = build()
  dist.broadcast_state(net, opt)
  local r = model:eval(synthetic(300, 9, 32, false))
  if dist.rank == 0 then print(json.encode({ accuracy = r.accuracy, loss = r.loss, samples = r.samples })) end
else
  error("check.lua: unknown mode " .. mode, 0)
end
dist.finalize()
