--- spore.dist.shard — optimizer-state sharding (spore.dist.init{shard_optimizer = true}).
--
-- The optimizer's parameters (its order) are split into N contiguous runs of about equal size;
-- rank r owns run r. In each step, after the gradient all-reduce, a rank updates only the
-- parameters it owns (the others' gradients are hidden from the optimizer for that call, so
-- their Momentum/Adam state is neither read nor written), then every parameter is broadcast
-- from its owner: the ranks end the step with the same weights, and each rank's
-- per-parameter state is current only for its own 1/N.
-- Memory: a rank keeps only its own state. Since the owners follow the optimizer's order, a
-- rank's parameters in a flat bucket are one run of it, and every slot buffer (moments,
-- moment1/moment2, accum...) is replaced by one covering only that run (Flat:keep_slots);
-- the other parameters' state Parameters keep their names with an empty tensor (fields
-- shard_owner, and on every slot Parameter shard_rank and shard_shape). An optimizer made after
-- spore.dist.init never allocates the rest (Shard.plan, from Optimizer:_build_flat), and a
-- checkpoint load skips it (held by another rank); one made before holds the full state until
-- the first Model:train, which broadcasts rank 0's and then cuts it down (Flat:keep_slots).
--
-- Checkpoints: ModelCheckpoint's saver becomes Shard:save on every rank: rank r writes
-- "<stem>.shards/rank<r>.ckpt" with its share of the per-parameter state (rank 0 also the
-- network, the optimizer's scalars and the appended info), and after a barrier rank 0 writes
-- "<stem>.shards/index.json" (spore.ckpt.merge reads it). Every file goes through
-- spore.save_checkpoint's collision-proof writer (a unique temporary file renamed into place).
local ckpt = require("spore.ckpt")
local json = require("spore.json")

local Shard = {}
Shard.__index = Shard

--- Shard.owners(params, size) → { [param] = rank }: N contiguous runs of the parameters (in
-- this order) of about equal element counts (a parameter goes to the run holding its middle).
function Shard.owners(params, size)
  local owner, total, sizes = {}, 0, {}
  for i, p in ipairs(params) do sizes[i] = p.data:numel(); total = total + sizes[i] end
  local cum = 0
  for i, p in ipairs(params) do
    local mid = cum + sizes[i] / 2
    owner[p] = math.min(size - 1, math.floor(mid * size / math.max(total, 1)))
    cum = cum + sizes[i]
  end
  return owner
end

--- The run lo..hi of flat bucket fb from the first to the last parameter rank owns (lo > hi:
-- none). The owners rise in the optimizer's order, so nothing else lies in between unless the
-- groups reorder the parameters (then those are held too).
function Shard.run_of(fb, owner, rank)
  local lo, hi = #fb.params + 1, 0
  for i, p in ipairs(fb.params) do
    if owner[p] == rank then lo, hi = math.min(lo, i), math.max(hi, i) end
  end
  return lo, hi
end

--- Called by the optimizer (spore.optim.Optimizer) when it is made while spore.dist runs with
-- shard_optimizer: before any slot exists, each flat bucket is told to hold only this rank's
-- run (Flat:plan_slots), so the other ranks' state is never allocated here.
function Shard.plan(opt, dist)
  local owner = Shard.owners(opt.params, dist.size)
  rawset(opt, "_shard_plan", { rank = dist.rank, size = dist.size, owner = owner })
  for _, fb in ipairs(rawget(opt, "buckets") or {}) do fb:plan_slots(Shard.run_of(fb, owner, dist.rank)) end
end

-- optimizer → its Shard (the slots are sharded once per optimizer, whatever Model uses it)
local by_opt = setmetatable({}, { __mode = "k" })

--- The Shard of optimizer opt, or nil.
function Shard.of(opt) return by_opt[opt] end

--- Shard.new(model, dist) → the shard of model.optimizer over dist.size ranks (dist: rank,
-- size, lib()); frees every slot value this rank does not own. The same Shard again for an
-- optimizer already sharded over the same ranks.
function Shard.new(model, dist)
  local opt = model.optimizer
  local prev = by_opt[opt]
  if prev then
    if prev.dist.rank ~= dist.rank or prev.dist.size ~= dist.size then
      error(("spore.dist: this optimizer's state is already sharded over %d ranks (this is rank %d of %d)")
        :format(prev.dist.size, dist.rank, dist.size), 0)
    end
    return prev
  end
  local plan = rawget(opt, "_shard_plan")
  if plan and (plan.rank ~= dist.rank or plan.size ~= dist.size) then
    error(("spore.dist: this optimizer's state was sharded over %d ranks when it was made (this is rank %d of %d)")
      :format(plan.size, dist.rank, dist.size), 0)
  end
  local self = setmetatable({ model = model, opt = opt, dist = dist, owner = plan and plan.owner
    or Shard.owners(opt.params, dist.size), saved_dirs = {} }, Shard)
  -- the state Parameter of each slot of each parameter → the parameter's owner
  self.state_owner, self.state_shape = {}, {}
  for _, fb in ipairs(rawget(opt, "buckets") or {}) do
    for _, name in ipairs(fb.slot_names) do
      for i, sp in pairs(fb.slots[name].state) do
        self.state_owner[sp] = self.owner[fb.params[i]]
        self.state_shape[sp] = fb.shapes[i]
        rawset(sp, "shard_rank", self.owner[fb.params[i]])
        rawset(sp, "shard_shape", fb.shapes[i])
      end
    end
  end
  -- runs of consecutive parameters of one flat bucket with the same owner (for the broadcast)
  self.runs = {}
  for _, fb in ipairs(rawget(opt, "buckets") or {}) do
    local i = 1
    while i <= #fb.params do
      local o = self.owner[fb.params[i]]
      local j = i
      while j < #fb.params and self.owner[fb.params[j + 1]] == o do j = j + 1 end
      local off = fb.offsets[i]
      self.runs[#self.runs + 1] = { fb = fb, off = off, n = fb.offsets[j] + fb.numels[j] - off, owner = o }
      i = j + 1
    end
  end
  -- keep this rank's state only: in each bucket, the run from its first to its last owned
  -- parameter (the owners rise in the optimizer's order, so nothing else lies in between
  -- unless the groups reorder the parameters: then those are kept too)
  -- (already so when the optimizer was made after spore.dist.init: Shard.plan)
  self.full_bytes, self.kept_bytes = 0, 0
  for _, fb in ipairs(rawget(opt, "buckets") or {}) do
    self.full_bytes = self.full_bytes + fb.total * 4 * #fb.slot_names
    if plan then
      self.kept_bytes = self.kept_bytes + fb:slot_bytes()
    else
      local lo, hi = Shard.run_of(fb, self.owner, dist.rank)
      self.kept_bytes = self.kept_bytes + fb:keep_slots(lo, hi)
    end
  end
  -- state held elsewhere: named, so that saving it directly is refused (spore.ckpt)
  for sp, o in pairs(self.state_owner) do
    if o ~= dist.rank and sp.data:numel() == 0 then rawset(sp, "shard_owner", o) end
  end
  by_opt[opt] = self
  return self
end

--- The optimizer step of a sharded rank (installed as opt.step for the duration of a step).
function Shard:step(o)
  local rank = self.dist.rank
  local hidden = {}
  for _, p in ipairs(o.params) do
    if self.owner[p] ~= rank and p.grad ~= nil then hidden[p] = p.grad; p.grad = nil end
  end
  local cls_step = getmetatable(o).step
  local ok, err = pcall(cls_step, o)
  for p, g in pairs(hidden) do p.grad = g end
  if not ok then error(err, 0) end
  local D = self.dist.lib()
  for k, r in ipairs(self.runs) do
    local v = r.fb.pbuf:narrow(1, r.off + 1, r.n)
    D.bcast(v, r.owner, "parameter broadcast " .. k .. " from rank " .. r.owner, self.dist._via and self.dist._via(v))
  end
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- ModelCheckpoint's saver on every rank: see the header. Returns the index path.
function Shard:save(obj, path, so)
  local dist, D = self.dist, self.dist.lib()
  so = so or {}
  if so.format and so.format ~= "ckpt" then
    error("spore.dist: a sharded checkpoint is written as .ckpt files (format '" .. so.format .. "' is refused)", 0)
  end
  if so.enc_key then error("spore.dist: a sharded checkpoint cannot be encrypted (enc_key)", 0) end
  local stem = path:gsub("%.ckpt$", "")
  local dir = stem .. ".shards"
  if dist.rank == 0 then
    local ok = os.execute("mkdir -p " .. shell_quote(dir))
    if ok ~= 0 and ok ~= true then error("spore.dist: cannot create " .. dir, 0) end
  end
  D.barrier("sharded checkpoint: directory " .. dir)
  local names, owner, mine = {}, {}, {}
  for _, kv in ipairs(obj:parameters_and_names()) do
    local name, p = kv[1], kv[2]
    names[#names + 1] = name
    local o = self.state_owner[p] or 0
    if o ~= 0 then owner[name] = o end
    if o == dist.rank then mine[#mine + 1] = { name = name, data = p.data } end
  end
  for _, kv in ipairs(so.append_dict or {}) do
    names[#names + 1] = kv[1]
    if dist.rank == 0 then mine[#mine + 1] = { name = kv[1], data = kv[2] } end
  end
  local files, owns, markers = {}, {}, {}
  for r = 0, dist.size - 1 do files[#files + 1] = "rank" .. r .. ".ckpt" end
  for _, o in pairs(self.state_owner) do owns[o] = true end
  owns[0] = true
  -- a rank that owns no state still writes its file (one marker entry, skipped by merge)
  for r = 1, dist.size - 1 do if not owns[r] then markers[#markers + 1] = "__shard_rank_" .. r end end
  if #mine == 0 then mine[1] = { name = "__shard_rank_" .. dist.rank, data = dist.rank } end
  ckpt.save_checkpoint(mine, dir .. "/rank" .. dist.rank .. ".ckpt", { crc_check = so.crc_check })
  D.barrier("sharded checkpoint: every rank's shard of " .. dir)
  local index = dir .. "/index.json"
  if dist.rank == 0 then
    local idx = json.ordered()
    idx.format, idx.version, idx.world_size = "spore-sharded-checkpoint", 1, dist.size
    idx.files, idx.names, idx.owner = files, names, json.object(owner)
    idx.markers = markers
    local tmp = index .. ".tmp." .. tostring(os.time()) .. "." .. tostring(math.random(1e9))
    local f = assert(io.open(tmp, "wb"))
    f:write(json.encode(idx), "\n")
    f:close()
    local ok, err = os.rename(tmp, index)
    if not ok then os.remove(tmp); error("spore.dist: cannot write " .. index .. ": " .. tostring(err), 0) end
  end
  D.barrier("sharded checkpoint: index " .. index)
  self.latest = index
  self:_prune(dir)
  return index
end

-- keep_checkpoint_max for shard directories (ModelCheckpoint prunes "<prefix>-*.ckpt" files)
function Shard:_prune(dir)
  local cb = self.cb
  self.saved_dirs[#self.saved_dirs + 1] = dir
  local keep = cb and cb.config and cb.config.keep_checkpoint_max
  if not keep or keep <= 0 then return end
  local D = self.dist.lib()
  while #self.saved_dirs > keep do
    local old = table.remove(self.saved_dirs, 1)
    if self.dist.rank == 0 then os.remove(old .. "/index.json") end
    D.barrier("pruning " .. old)
    os.remove(old .. "/rank" .. self.dist.rank .. ".ckpt")
    D.barrier("pruning " .. old)
    if self.dist.rank == 0 then os.remove(old) end
  end
end

--- Make ModelCheckpoint cb write sharded checkpoints (its saver), on every rank.
function Shard:wrap_checkpoint(cb)
  if rawget(cb, "__dist_sharded") then return end
  self.cb = cb
  rawset(cb, "saver", function(obj, path, so) return self:save(obj, path, so) end)
  rawset(cb, "__dist_sharded", true)
end

return Shard
