--- spore.dist.sampler — which samples each rank sees.
--
-- Training (S.train(ds, rank, size)): every rank shuffles the WHOLE dataset with its own
-- generator seeded with the dataset's seed, so every rank holds the same global order, the
-- order a single process with the same seed holds. Global batch k is positions
-- [k*B*N, (k+1)*B*N) of that order (B: the dataset's batch, per rank; N: ranks) and rank r
-- takes the r-th B of it. So N ranks at batch B see, step by step, exactly the samples one
-- process at batch B*N sees: the same global order for any rank count. A last global batch
-- with fewer than B*N samples is dropped (every rank must take a step of the same size);
-- num_batches() counts only full global batches.
--
-- Evaluation (S.eval(ds, rank, size)): rank r takes the batches k with k % N == r of the
-- dataset's own sequence (the others are skipped undecoded where possible); the metrics are
-- then summed over ranks (spore.dist.reduce_metrics), so the result is the single-process one.
local B = require("ffi.data")
local R = require("ffi.tensor")

local S = {}

local Train = {}
Train.__index = function(t, k)
  local v = Train[k]
  if v ~= nil then return v end
  return t.ds[k] -- the dataset's other fields (name, batch, transforms, ...)
end
Train.__name = "DistributedSampler"

function S.train(ds, rank, size)
  if type(ds._size) ~= "number" or type(ds._buffers) ~= "function" then
    error("spore.dist: the training dataset must be a spore.data.Dataset (its samples are sharded by rank), got "
      .. tostring(ds), 3)
  end
  local self = setmetatable({ ds = ds, rank = rank, world = size, __dist_sampler = true }, Train)
  self.order = B.index_array(ds._size)
  for i = 0, ds._size - 1 do self.order[i] = i end
  self.rng = R.new_rng(ds.seed or 0)
  return self
end

function Train:size() return self.ds._size end
function Train:get_batch_size() return self.ds.batch_size end
--- full global batches per pass, times repeat
function Train:num_batches()
  return math.floor(self.ds._size / (self.ds.batch_size * self.world)) * self.ds.repeat_count
end
Train.get_dataset_size = Train.num_batches
function Train:__tostring()
  return ("DistributedSampler(rank %d of %d, %s)"):format(self.rank, self.world, tostring(self.ds))
end

function Train:batches()
  local ds = self.ds
  local img, lab = ds:_buffers()
  local bs, size, order = ds.batch_size, ds._size, self.order
  local gb = bs * self.world
  local per = math.floor(size / gb)
  local rep, pass, k = ds.repeat_count, 0, per
  return function()
    if k >= per then
      if pass >= rep or per == 0 then return nil end
      pass, k = pass + 1, 0
      if ds.shuffled then B.shuffle(order, size, self.rng) end
    end
    local idx = order + (k * gb + self.rank * bs)
    k = k + 1
    B.image_batch(img, ds.images, idx, bs, ds._ops, ds._nops, ds._rng)
    B.gather_rows(lab, ds.labels, idx, bs)
    if ds._dimg then
      ds._dimg:copy_(img)
      ds._dlab:copy_(lab)
      return ds._dimg, ds._dlab
    end
    return img, lab
  end
end

local Eval = {}
Eval.__index = function(t, k)
  local v = Eval[k]
  if v ~= nil then return v end
  return t.ds[k]
end

function S.eval(ds, rank, size)
  return setmetatable({ ds = ds, rank = rank, world = size, __dist_sampler = true }, Eval)
end
function Eval:num_batches()
  local n = self.ds:num_batches()
  return math.floor(n / self.world) + ((n % self.world) > self.rank and 1 or 0)
end
function Eval:size() return self.ds:size() end
function Eval:batches()
  local it = self.ds:batches()
  local k = -1
  local rank, world = self.rank, self.world
  return function()
    while true do
      local x, y = it()
      if x == nil then return nil end
      k = k + 1
      if k % world == rank then return x, y end
    end
  end
end

return S
