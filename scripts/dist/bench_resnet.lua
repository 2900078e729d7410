-- bench_resnet.lua — spore.dist's scaling and overlap figures (README "Several machines"):
--   mpirun -np 2 --oversubscribe luajit scripts/dist/bench_resnet.lua [--steps 6] [--batch 16] [--size 64]
-- ResNet18 (10 classes) on synthetic images of SIZE×SIZE, BATCH per rank, Momentum; the same
-- steps with the all-reduce overlapping backward (overlap = true) and started after it
-- (overlap = false), then the bare all-reduce of every gradient bucket. Rank 0 prints one JSON
-- line: per-step seconds, all-reduce wait per step in each mode, the bare all-reduce time, and
-- the share of it hidden by overlap (1 - wait(overlap) / wait(no overlap)).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local dist = require("spore.dist")
local json = require("spore.json")

local o = { steps = 6, batch = 16, size = 64, bucket_mb = 2, warmup = 2 }
local i = 1
while arg[i] do
  local k = arg[i]:match("^%-%-(.+)$")
  if not k or not arg[i + 1] then error("usage: bench_resnet.lua [--steps N] [--batch N] [--size N] [--bucket_mb X]", 0) end
  o[k:gsub("%-", "_")] = tonumber(arg[i + 1])
  i = i + 2
end

dist.init({ bucket_mb = o.bucket_mb })
spore.manual_seed(1)
local net = spore.models.resnet18({ class_num = 10 })
local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
local loss = spore.nn.SoftmaxCrossEntropyWithLogits({ sparse = true, reduction = "mean" })
local model = spore.Model(net, loss, opt)

-- a dataset that yields the same random batch (already this rank's share)
local x = spore.randn({ o.batch, 3, o.size, o.size })
local y = spore.zeros({ o.batch }, "int32")
for j = 1, o.batch do y[j] = (j + dist.rank) % 10 end
local ds = { __dist_sampler = true, name = "synthetic" }
function ds:num_batches() return 1000000 end
function ds:size() return 1000000 * o.batch end
function ds:batches()
  return function() return x, y end
end

local function run(overlap, steps)
  dist.init({ bucket_mb = o.bucket_mb, overlap = overlap })
  local t0 = dist.wtime()
  model:train(1, ds, { steps = steps, progress = false })
  local s = dist.stats
  return { step_s = (dist.wtime() - t0) / steps, wait_s = s.wait_s / steps, backward_s = s.backward_s / steps,
    buckets = s.buckets }
end

run(true, o.warmup)
local ov = run(true, o.steps)
local nov = run(false, o.steps)
local ov2 = run(true, o.steps)
-- the bare all-reduce of every gradient bucket (started together, then waited)
local D = dist.lib()
local bufs = {}
for _, b in ipairs(opt.buckets) do bufs[#bufs + 1] = b.gbuf end
local reps, bytes = 5, 0
for _, g in ipairs(bufs) do bytes = bytes + g:numel() * 4 end
dist.barrier("bench")
local t0 = dist.wtime()
for _ = 1, reps do
  local reqs = {}
  for _, g in ipairs(bufs) do reqs[#reqs + 1] = D.iallreduce(g) end
  for _, r in ipairs(reqs) do D.wait(r, "bench all-reduce") end
end
local bare = (dist.wtime() - t0) / reps
local wait_ov = (ov.wait_s + ov2.wait_s) / 2
local res = json.ordered()
res.ranks, res.batch_per_rank, res.image = dist.size, o.batch, o.size
res.gradient_mb = bytes / 1048576
res.buckets = ov.buckets
res.step_s_overlap = (ov.step_s + ov2.step_s) / 2
res.step_s_no_overlap = nov.step_s
res.backward_s = (ov.backward_s + ov2.backward_s) / 2
res.allreduce_wait_s_overlap = wait_ov
res.allreduce_wait_s_no_overlap = nov.wait_s
res.allreduce_bare_s = bare
res.hidden_share = nov.wait_s > 0 and math.max(0, 1 - wait_ov / nov.wait_s) or 0
res.allreduce_share_of_step_no_overlap = nov.wait_s / nov.step_s
dist.finalize()
if dist.rank == 0 then print(json.encode(res)) end
