--- spore.dist — data-parallel training over MPI (and NCCL in a CUDA build).
--
--   mpirun -np 2 luajit scripts/finetune.lua --distributed ...
--   local dist = require("spore.dist")
--   dist.init{timeout = 20, bucket_mb = 2, overlap = true, shard_optimizer = false}
--   dist.rank, dist.size          -- this process, all of them (from mpirun's environment)
--   model:train(epochs, ds)       -- unchanged: Model uses spore.dist once it is initialised
--   dist.finalize()
--
-- What Model does once spore.dist is initialised (the hook in spore.train.model):
--   * at the start of train: the parameters, BatchNorm statistics and optimizer state of rank 0
--     are broadcast to every rank (once per model); the dataset is sharded by
--     spore.dist.sampler (same global order for any rank count); ModelCheckpoint runs on
--     rank 0 only (one ordinary checkpoint), or on every rank with shard_optimizer;
--   * the backend is chosen per model (M.choose_backend): NCCL for a network on the GPU when
--     this libspore_dist.so has it (make CUDA=1) and a GPU is there, else MPI;
--   * in every step: gradients are summed over ranks (MPI_Iallreduce, or ncclAllReduce on the
--     device buffers) in buckets of the
--     optimizer's flat gradient buffers (spore.optim.Flat), each started as soon as the
--     backward pass has produced all of its gradients (spore.nn.chain's backward hook), so
--     communication overlaps the rest of the backward; they are completed (and divided by
--     the rank count) before the optimizer step, the loss-scale overflow check included;
--   * eval: each rank evaluates every N-th batch, and the metrics' counts are summed.
-- BatchNorm statistics stay per rank (MindSpore's data parallel; rank 0's are saved), or with
-- sync_bn = true every BatchNorm2d uses the global batch's (spore.dist.sync_bn).
--
-- Failure: every collective is non-blocking and completed by polling until the timeout
-- (default 20 s). Every step also exchanges a heartbeat (the step number) with every other
-- rank; a rank that died or hangs makes the others fail with
--   "rank 0 of 2: no heartbeat for step 57 from rank 1 within 20 s: it died or hangs"
-- and a non-zero exit, never an endless wait.
require("spore") -- puts bindings/ on package.path (ffi.dist)
local opts_lib = require("spore.opts")

local M = { rank = 0, size = 1, active = false, stats = nil }

local OPTIONS = { "timeout", "bucket_mb", "overlap", "shard_optimizer", "sync_bn", "backend" }
local TYPES = { timeout = "number", bucket_mb = "number", overlap = "boolean", shard_optimizer = "boolean",
  sync_bn = "boolean", backend = "string" }
M.OPTIONS = OPTIONS

local D -- ffi.dist, loaded by init only

--- true when this process was started by mpirun (Open MPI's environment)
function M.launched()
  return os.getenv("OMPI_COMM_WORLD_SIZE") ~= nil or os.getenv("PMIX_RANK") ~= nil
end

--- Is the MPI library usable here? → true, or false and why.
function M.available()
  local ok, lib = pcall(require, "ffi.dist")
  if not ok then return false, tostring(lib) end
  return lib.available()
end

--- dist.init(opts) → spore.dist. opts: timeout (seconds a collective may wait, 20), bucket_mb
-- (gradient bucket size, 2), overlap (start each bucket during backward, true),
-- shard_optimizer (each rank keeps and writes 1/N of the Momentum/Adam state, false),
-- sync_bn (BatchNorm with the statistics of the global batch, spore.dist.sync_bn; false:
-- per rank, as MindSpore's data parallel), backend ("auto": NCCL for a cuda network when
-- this libspore_dist.so has it and a GPU is there, else MPI; "mpi"; "nccl": NCCL or an error;
-- see M.choose_backend).
function M.init(o)
  o = opts_lib.check("spore.dist.init", o, OPTIONS, nil, TYPES)
  if o.backend ~= nil and o.backend ~= "mpi" and o.backend ~= "nccl" and o.backend ~= "auto" then
    error("spore.dist.init: option 'backend' must be \"auto\", \"mpi\" or \"nccl\", got \"" .. o.backend .. "\"", 2)
  end
  if o.timeout ~= nil and not (o.timeout > 0) then error("spore.dist.init: timeout must be > 0 seconds", 2) end
  if o.bucket_mb ~= nil and not (o.bucket_mb > 0) then error("spore.dist.init: bucket_mb must be > 0", 2) end
  if not M.active then
    local ok, lib = pcall(require, "ffi.dist")
    if not ok then error("spore.dist: " .. tostring(lib), 0) end
    local avail, why = lib.available()
    if not avail then error("spore.dist: " .. why, 0) end
    D = lib
    M.rank, M.size = D.init()
    M.active = true
    M._sentinel = newproxy and newproxy(true) or nil
    if M._sentinel then getmetatable(M._sentinel).__gc = function() pcall(M.finalize) end end
  end
  M.timeout = o.timeout or M.timeout or 20
  D.set_timeout(M.timeout)
  M.bucket_bytes = (o.bucket_mb or 2) * 1048576
  M.overlap = o.overlap ~= false
  M.shard_optimizer = o.shard_optimizer == true
  M.sync_bn = o.sync_bn == true
  M.backend = o.backend or "auto"
  M.comm = nil -- chosen per model at attach (M.choose_backend)
  if M.backend == "nccl" then
    local usable, why = D.nccl_usable()
    if not usable then error("spore.dist.init: backend \"nccl\": " .. why, 2) end
    -- one GPU per process on a machine: the local rank, modulo the GPUs (the engine takes the modulo)
    D.nccl_init(tonumber(os.getenv("OMPI_COMM_WORLD_LOCAL_RANK") or "") or 0)
  end
  M.stats = { steps = 0, wait_s = 0, backward_s = 0, step_s = 0, buckets = 0, bytes = 0 }
  return M
end

--- The backend of a model's collectives: choose_backend(requested, device, nccl) → "mpi" or
-- "nccl", and a note (a string when the choice needs saying, else nil). requested: the init
-- option ("mpi", "nccl" or "auto"); device: where the optimizer's flat buffers live ("cpu",
-- "sim", "cuda:0"...); nccl: { built = this libspore_dist.so has NCCL, usable = it loads and
-- sees a GPU, why = what is missing }. NCCL moves device memory only: "nccl" for a network
-- off the GPU is an error, and so is "nccl" where it is not usable; "auto" takes NCCL for a
-- cuda network when it is usable, else MPI (through host copies, said in the note).
function M.choose_backend(requested, device, nccl)
  local on_gpu = type(device) == "string" and device:match("^cuda") ~= nil
  if requested == "mpi" then return "mpi" end
  if requested == "nccl" then
    if not on_gpu then
      error(("spore.dist: backend \"nccl\" moves GPU memory, and the network is on %s: use backend \"mpi\" or "
        .. "move it to the GPU (net:to(spore.dist.local_device()))"):format(tostring(device)), 0)
    end
    if not nccl.usable then error("spore.dist: backend \"nccl\": " .. tostring(nccl.why), 0) end
    return "nccl"
  end
  if on_gpu then
    if nccl.usable then return "nccl" end
    return "mpi", ("the network is on %s but NCCL is not usable (%s): its gradients go through host copies and MPI")
      :format(device, tostring(nccl.why))
  end
  return "mpi"
end

--- The device this process should train on: "cuda:<local rank mod GPUs>" when this engine sees
-- GPUs (one GPU per process on a machine), else "cpu".
function M.local_device()
  local n = require("spore").device_count()
  if n < 1 then return "cpu" end
  local lr = tonumber(os.getenv("OMPI_COMM_WORLD_LOCAL_RANK") or "") or 0
  return "cuda:" .. (lr % n)
end

-- how tensor t travels: "nccl" for a tensor on the GPU once the model chose NCCL, else MPI (nil)
function M._via(t)
  if M.comm == "nccl" and t:device():match("^cuda") then return "nccl" end
  return nil
end

-- choose (once per model) the backend for the optimizer's device, agree on it over the ranks,
-- and set NCCL up on first use
local function setup_comm(opt)
  local b1 = (rawget(opt, "buckets") or {})[1]
  local device = b1 and b1.device or "cpu"
  local usable, why = D.nccl_usable()
  local choice, note = M.choose_backend(M.backend, device, { built = D.have_nccl(), usable = usable, why = why })
  local x = choice == "nccl" and 1 or 0
  local mx = D.allreduce_numbers({ x }, "max", "backend choice")[1]
  local mn = D.allreduce_numbers({ x }, "sum", "backend choice")[1]
  if mx * M.size ~= mn then
    error(("spore.dist: rank %d of %d: the ranks chose different backends (this rank: %s for %s): every rank "
      .. "must see the same devices and NCCL"):format(M.rank, M.size, choice, device), 0)
  end
  if note and M.rank == 0 and not M._noted then
    io.stderr:write("spore.dist: " .. note .. "\n")
    M._noted = true
  end
  if choice == "nccl" then
    if not D.nccl_ready() then D.nccl_init(tonumber(device:match(":(%d+)$") or "0")) end
    local ok, err = D.nccl_bind_engine()
    if not ok then error("spore.dist: " .. err, 0) end
  end
  M.comm = choice
  return choice
end
M._setup_comm = setup_comm

--- End MPI (idempotent). Scripts call it once training is over.
function M.finalize()
  if M.active and D then
    if D.nccl_ready() then D.nccl_finalize() end
    D.finalize()
    M.active = false
  end
end

local function need(where)
  if not M.active then error(where .. ": spore.dist is not initialised (call spore.dist.init() first)", 3) end
end

--- The raw collectives, for scripts and specs.
function M.barrier(what) need("spore.dist.barrier"); D.barrier(what or "barrier") end
function M.broadcast(t, root, what) need("spore.dist.broadcast"); D.bcast(t, root or 0, what or "broadcast") end
function M.allreduce_numbers(list, op, what) need("spore.dist.allreduce_numbers"); return D.allreduce_numbers(list, op, what or "all-reduce") end
function M.wtime() return D and D.wtime() or os.clock() end
function M.lib() return D end

---------------------------------------------------------------- state broadcast
local function train_state(net, opt)
  local TN = require("spore.train.model").TrainNetwork
  return TN(net, opt):parameters_and_names()
end

--- Broadcast every tensor of the training state (parameters, BatchNorm statistics, optimizer
-- state) from rank 0, after checking that every rank built the same state (names, sizes).
function M.broadcast_state(net, opt)
  need("spore.dist.broadcast_state")
  local st = train_state(net, opt)
  -- optimizer state already sharded (spore.dist.shard) is each owner's own: not broadcast
  -- (every rank made the same initial slots, or loaded the same checkpoint into its share)
  local sh = package.loaded["spore.dist.shard"] and package.loaded["spore.dist.shard"].of(opt)
  if sh then
    local keep = {}
    for _, kv in ipairs(st) do if not sh.state_owner[kv[2]] then keep[#keep + 1] = kv end end
    st = keep
  elseif rawget(opt, "_shard_plan") then
    -- made after spore.dist.init with shard_optimizer: its slots were never whole here
    local keep = {}
    for _, kv in ipairs(st) do if rawget(kv[2], "shard_rank") == nil then keep[#keep + 1] = kv end end
    st = keep
  end
  local n, elems, sig = #st, 0, 0
  for i, kv in ipairs(st) do
    local e = kv[2].data:numel()
    elems = elems + e
    sig = (sig * 31 + e + #kv[1] * i) % 1000000007
  end
  local mx = D.allreduce_numbers({ n, elems, sig }, "max", "state check")
  local sm = D.allreduce_numbers({ n, elems, sig }, "sum", "state check")
  for i = 1, 3 do
    if mx[i] * M.size ~= sm[i] then
      error(("spore.dist: rank %d of %d: the ranks built different training states (this rank: %d tensors, %d "
        .. "values): every rank must build the same network and optimizer"):format(M.rank, M.size, n, elems), 0)
    end
  end
  for _, kv in ipairs(st) do D.bcast(kv[2].data, 0, "broadcast of '" .. kv[1] .. "'", M._via(kv[2].data)) end
end

---------------------------------------------------------------- gradient buckets
local chain = require("spore.nn.chain")

-- recursive parameter lists of modules (weak: modules come and go)
local params_cache = setmetatable({}, { __mode = "k" })
local function params_of(m)
  local l = params_cache[m]
  if not l then
    l = (type(m.parameters) == "function") and m:parameters() or {}
    params_cache[m] = l
  end
  return l
end

-- comm buckets over opt's flat gradient buffers: runs of consecutive parameters of one flat
-- bucket, in backward order (last parameters first), up to bucket_bytes each
local function build_buckets(opt)
  local comm, of = {}, {}
  for _, fb in ipairs(rawget(opt, "buckets") or {}) do
    local cur
    for i = #fb.params, 1, -1 do
      local bytes = fb.numels[i] * 4
      if not cur or (cur.bytes + bytes > M.bucket_bytes and cur.bytes > 0) then
        cur = { fb = fb, lo = i, hi = i, bytes = 0, params = {} }
        comm[#comm + 1] = cur
      end
      cur.lo = i
      cur.bytes = cur.bytes + bytes
      cur.params[#cur.params + 1] = fb.params[i]
      of[fb.params[i]] = { cur, i }
    end
  end
  for _, c in ipairs(comm) do
    local off = c.fb.offsets[c.lo]
    local n = c.fb.offsets[c.hi] + c.fb.numels[c.hi] - off
    c.off, c.n = off, n
  end
  return comm, of
end

local Reducer = {}
Reducer.__index = Reducer

function M.reducer(opt)
  local comm, of = build_buckets(opt)
  if #comm == 0 then
    error("spore.dist: the optimizer has no flat state (spore.optim.Flat buckets): it cannot be data parallel", 3)
  end
  return setmetatable({ opt = opt, comm = comm, of = of, ready = {} }, Reducer)
end

-- the bucket's gradient view, (re)made when the flat buffer was rebuilt
local function view_of(c)
  local g = c.fb.gbuf
  if c.gbuf ~= g then c.gbuf, c.view = g, g:narrow(1, c.off + 1, c.n) end
  return c.view
end

function Reducer:_start(c)
  c.req = D.iallreduce(view_of(c), M._via(c.fb.gbuf))
  c.started = D.wtime()
end

-- the gradients of module m's parameters are final: mark them, start full buckets
function Reducer:_on_backward(m)
  local ready, of = self.ready, self.of
  for _, p in ipairs(params_of(m)) do
    local w = of[p]
    if w and not ready[p] then
      ready[p] = true
      local c, i = w[1], w[2]
      -- a gradient the layer allocated itself goes into the flat buffer (as Flat:sync does)
      local gv = c.fb.store.gviews[i]
      if p.grad ~= nil and not rawequal(p.grad, gv) then gv:copy_(p.grad); p.grad = gv end
      c.left = c.left - 1
      if c.left == 0 and M.overlap then self:_start(c) end
    end
  end
  if self.any_started then D.progress() end
  self.any_started = true
end

function Reducer:begin(step)
  for _, c in ipairs(self.comm) do c.left, c.req = #c.params, nil end
  for k in pairs(self.ready) do self.ready[k] = nil end
  self.any_started = false
  self.step_no = step
  D.heartbeat_post(step)
  chain.on_backward = function(m) self:_on_backward(m) end
end

--- Complete the step's all-reduces: buckets not started yet start now (parameters without a
-- gradient, or overlap = false), the heartbeats are checked (naming a dead rank), then every
-- bucket is waited for and divided by the rank count.
function Reducer:finish()
  chain.on_backward = nil
  for _, c in ipairs(self.comm) do
    -- gradients that no backward hook saw (a net that runs its own backward) join now
    if c.left > 0 then
      for i = c.lo, c.hi do
        local p, gv = c.fb.params[i], c.fb.store.gviews[i]
        if p.grad ~= nil and not rawequal(p.grad, gv) then gv:copy_(p.grad); p.grad = gv end
      end
    end
    if not c.req then self:_start(c) end
  end
  local t0 = D.wtime()
  D.heartbeat_wait(self.step_no)
  local inv = 1 / M.size
  for k, c in ipairs(self.comm) do
    D.wait(c.req, ("all-reduce of gradient bucket %d (step %d)"):format(k, self.step_no))
    c.req = nil
    if M.size > 1 then view_of(c):mul_(inv) end
  end
  local waited = D.wtime() - t0
  local s = M.stats
  s.wait_s = s.wait_s + waited
  s.buckets = #self.comm
  return waited
end

function Reducer:abandon() chain.on_backward = nil end

---------------------------------------------------------------- the Model hook
-- state kept per Model: the reducer, whether the state was broadcast
local per_model = setmetatable({}, { __mode = "k" })
local samplers = setmetatable({}, { __mode = "k" })

local function state_of(model)
  local s = per_model[model]
  if not s or s.opt ~= model.optimizer then
    s = { opt = model.optimizer }
    per_model[model] = s
  end
  return s
end

local function is_ckpt_cb(cb)
  local mt = type(cb) == "table" and getmetatable(cb)
  return mt and mt.__name == "ModelCheckpoint"
end

--- The optimizer-state shard of a model (spore.dist.shard), or nil.
function M.shard_of(model)
  local s = per_model[model]
  return s and s.shard or nil
end

--- Model:_train calls this first (spore.train.model): the state broadcast (once per model
-- and optimizer), the sharded dataset, and the callbacks this rank runs. Returns dataset, list.
function M.attach(model, dataset, list)
  need("spore.dist.attach")
  local s = state_of(model)
  s.comm = s.comm or setup_comm(model.optimizer)
  M.comm = s.comm
  if not s.broadcast then
    M.broadcast_state(model.network, model.optimizer)
    s.broadcast = true
  end
  s.reducer = s.reducer or M.reducer(model.optimizer)
  if M.shard_optimizer then s.shard = s.shard or require("spore.dist.shard").new(model, M) end
  if M.sync_bn and M.size > 1 then require("spore.dist.sync_bn").install(model.network, D) end
  if not rawget(dataset, "__dist_sampler") then
    -- one sampler per dataset: its shuffles go on from call to call, as the dataset's own
    local sm = samplers[dataset]
    if not sm or sm.world ~= M.size then
      sm = require("spore.dist.sampler").train(dataset, M.rank, M.size)
      samplers[dataset] = sm
    end
    dataset = sm
  end
  local out = {}
  for _, cb in ipairs(list) do
    if is_ckpt_cb(cb) then
      if M.shard_optimizer then
        s.shard:wrap_checkpoint(cb)
        out[#out + 1] = cb
      elseif M.rank == 0 then
        out[#out + 1] = cb
      end
    elseif type(cb) == "table" and getmetatable(cb) and getmetatable(cb).__name == "ProgressBar" and M.rank ~= 0 then
      -- one progress bar (rank 0's)
    else
      out[#out + 1] = cb
    end
  end
  return dataset, out
end

--- One training step's backward and optimizer step (Model:_train_step calls it in place of
-- spore.train.loss_scale.backward_and_step, which it receives as `inner`).
function M.train_step(model, net, loss, opt, x, ctx, inner)
  local s = state_of(model)
  local red = s.reducer
  local st = M.stats
  local t0 = D.wtime()
  red:begin(st.steps + 1)
  -- the net as the step sees it: its backward ends with the completed all-reduce
  local proxy = setmetatable({}, { __index = net })
  function proxy.backward(_, ...)
    local g = net:backward(...)
    local tb = D.wtime()
    st.backward_s = st.backward_s + (tb - t0)
    red:finish()
    return g
  end
  if s.shard then rawset(opt, "step", function(o) return s.shard:step(o) end) end
  local ok, res = pcall(inner, model, proxy, loss, opt, x, ctx)
  if s.shard then rawset(opt, "step", nil) end
  red:abandon()
  if not ok then error(res, 0) end
  st.steps = st.steps + 1
  st.step_s = st.step_s + (D.wtime() - t0)
  return res
end

--- Model:_eval_process: this rank's share of the evaluation batches.
function M.eval_shard(dataset)
  if not M.active or M.size == 1 or rawget(dataset, "__dist_sampler") then return dataset end
  return require("spore.dist.sampler").eval(dataset, M.rank, M.size)
end

-- the counters of spore.train.metrics' classes: summed over ranks (_class_num: the max)
local SUM_FIELDS = { "_correct_num", "_total_num", "_samples_num", "_sum_loss" }
local SUM_ARRAYS = { "_tp", "_pos", "_act" }

--- Sum every metric's counters over ranks (Model:_eval_process, before the metrics' eval).
-- A metric object of another kind is refused by name: its state cannot be summed blindly.
function M.reduce_metrics(m)
  if not M.active or M.size == 1 then return end
  local known = { Accuracy = true, Precision = true, Recall = true, Fbeta = true, F1 = true, TopKCategoricalAccuracy = true,
    Top1CategoricalAccuracy = true, Top5CategoricalAccuracy = true, Loss = true, ConfusionMatrix = true }
  local nums = { m.count }
  local cls = {}
  for _, e in ipairs(m.list) do
    local mt = getmetatable(e[2])
    local name = mt and mt.__name or "?"
    if not known[name] then
      error(("spore.dist: metric '%s' (%s) cannot be reduced over ranks: use spore's metrics, or evaluate on one "
        .. "rank"):format(e[1], name), 0)
    end
    cls[#cls + 1] = e[2]._class_num or 0
  end
  -- classes first (a rank that saw no batch has none yet)
  if #cls > 0 then cls = D.allreduce_numbers(cls, "max", "metric classes") end
  for i, e in ipairs(m.list) do
    local o = e[2]
    if o._class_num ~= nil and cls[i] > 0 and o._class_num == 0 then
      o._class_num, o._tp, o._pos, o._act = cls[i], {}, {}, {}
      for j = 1, cls[i] do o._tp[j], o._pos[j], o._act[j] = 0, 0, 0 end
    end
    for _, f in ipairs(SUM_FIELDS) do if type(o[f]) == "number" then nums[#nums + 1] = o[f] end end
    for _, f in ipairs(SUM_ARRAYS) do
      if type(o[f]) == "table" then for j = 1, #o[f] do nums[#nums + 1] = o[f][j] end end
    end
    if o.confusion_matrix then
      for a = 1, #o.confusion_matrix do for b = 1, #o.confusion_matrix[a] do nums[#nums + 1] = o.confusion_matrix[a][b] end end
    end
  end
  nums = D.allreduce_numbers(nums, "sum", "metric reduction")
  local k = 1
  m.count = nums[k]
  for _, e in ipairs(m.list) do
    local o = e[2]
    for _, f in ipairs(SUM_FIELDS) do if type(o[f]) == "number" then k = k + 1; o[f] = nums[k] end end
    for _, f in ipairs(SUM_ARRAYS) do
      if type(o[f]) == "table" then for j = 1, #o[f] do k = k + 1; o[f][j] = nums[k] end end
    end
    if o.confusion_matrix then
      for a = 1, #o.confusion_matrix do
        for b = 1, #o.confusion_matrix[a] do k = k + 1; o.confusion_matrix[a][b] = nums[k] end
      end
      o._is_update = true
    end
  end
end

return M
