--- spore.dist.sync_bn — synchronised BatchNorm (spore.dist.init{sync_bn = true}, MindSpore's
-- SyncBatchNorm over all ranks). In training with batch statistics, each BatchNorm2d of the
-- network normalises with the mean and variance of the GLOBAL batch (every rank's samples):
--   forward: per-channel sums over ranks (one all-reduce for the mean, one for the centred
--            squares, as the kernel's two passes), then the engine's kernel normalises with
--            those statistics; the moving statistics take the global ones (unbiased variance
--            over the global count), so they stay equal on every rank;
--   backward: the engine's kernel gives this rank's sum(dy) and sum(dy*xhat); their sums over
--            ranks give the input gradient of the global batch normalisation.
-- So N ranks at batch B compute what one process computes at batch B*N. In eval mode (moving
-- statistics) the layer is the ordinary one. Installed per instance (forward/backward fields)
-- on every BatchNorm2d of the network when training starts.
local T = require("spore.tensor")
local K = require("ffi.nn")

local S = {}

local function c4(t, c) return t:reshape({ 1, c, 1, 1 }) end

-- in-place sum over ranks of a float32 tensor (a deadline-bound all-reduce; NCCL on the
-- GPU when the model chose it, spore.dist._via)
local function allsum(D, t, what)
  local dist = package.loaded["spore.dist"]
  local req = D.iallreduce(t, dist and dist._via and dist._via(t) or nil)
  D.wait(req, what)
  return t
end

local function sync_forward(bn, D, x)
  if not bn:_batch_stats() then return bn.__sync_orig_forward(bn, x) end
  local s = x:shape()
  if #s ~= 4 or s[2] ~= bn.num_features then return bn.__sync_orig_forward(bn, x) end
  local C, dev = s[2], x:device()
  local local_n = s[1] * s[3] * s[4]
  -- global mean: sum over N, H, W, then over ranks (the count too)
  local sums = T.empty({ C + 1 }, "float32", dev)
  sums:narrow(1, 1, C):copy_(x:sum(1, true):sum(3, true):sum(4, true):reshape({ C }))
  sums:narrow(1, C + 1, 1):fill_(local_n)
  allsum(D, sums, "synchronised BatchNorm mean (" .. tostring(bn.__sync_name) .. ")")
  local M = sums:narrow(1, C + 1, 1):item()
  local mean = sums:narrow(1, 1, C) / M
  -- global biased variance: centred squares summed over ranks
  local d = x - c4(mean, C)
  local q = (d * d):sum(1, true):sum(3, true):sum(4, true):reshape({ C }):contiguous()
  allsum(D, q, "synchronised BatchNorm variance (" .. tostring(bn.__sync_name) .. ")")
  local var = q / M
  local out = bn:buffer("output", s, nil, dev)
  local sm = bn:buffer("save_mean", { C }, nil, dev)
  local si = bn:buffer("save_invstd", { C }, nil, dev)
  -- the kernel's eval path normalises with the statistics it is given
  K.batchnorm_forward(out, sm, si, x, bn.gamma.data, bn.beta.data, mean, var, false, false, bn.momentum, bn.eps)
  bn._used_batch = true
  bn.__sync_M = M
  if bn.training then
    local mom = bn.momentum
    local unb = M > 1 and (q / (M - 1)) or var
    bn.moving_mean.data:mul_(mom):add_(mean * (1 - mom))
    bn.moving_variance.data:mul_(mom):add_(unb * (1 - mom))
  end
  return out
end

local function sync_backward(bn, D, x, gout, need_input_grad)
  if not bn._used_batch or not bn.__sync_M then return bn.__sync_orig_backward(bn, x, gout, need_input_grad) end
  local s = x:shape()
  local C, dev = s[2], x:device()
  local gx = bn:buffer("grad_input", s, nil, dev)
  -- this rank's sum(dy) and sum(dy*xhat) (the kernel's eval path: gx = gamma*invstd*dy)
  local sums = T.empty({ 2 * C }, "float32", dev):zero_()
  local sgx, sg = sums:narrow(1, 1, C), sums:narrow(1, C + 1, C)
  K.batchnorm_backward(gx, sgx, sg, gout, x, bn.gamma.data, bn.save_mean, bn.save_invstd, false)
  local gg, gb = bn:grad_of(bn.gamma), bn:grad_of(bn.beta)
  if gg then gg:add_(sgx) end
  if gb then gb:add_(sg) end
  allsum(D, sums, "synchronised BatchNorm gradient (" .. tostring(bn.__sync_name) .. ")")
  local M = bn.__sync_M
  bn.__sync_M = nil
  local k = c4(bn.gamma.data * bn.save_invstd, C)
  local xhat = (x - c4(bn.save_mean, C)) * c4(bn.save_invstd, C)
  local corr = (xhat * c4(sgx / M, C) + c4(sg / M, C)) * k
  gx:sub_(corr)
  if need_input_grad == false then return nil end
  return gx
end

--- Install synchronised BatchNorm on every BatchNorm2d of net (idempotent); D: ffi.dist.
function S.install(net, D)
  local n = 0
  for _, kv in ipairs(net:cells_and_names()) do
    local name, m = kv[1], kv[2]
    local mt = getmetatable(m)
    if mt and mt.__name == "BatchNorm2d" and not rawget(m, "__sync_orig_forward") then
      rawset(m, "__sync_orig_forward", mt.forward)
      rawset(m, "__sync_orig_backward", mt.backward)
      rawset(m, "__sync_name", name)
      rawset(m, "forward", function(self, x) return sync_forward(self, D, x) end)
      rawset(m, "backward", function(self, x, g, nig) return sync_backward(self, D, x, g, nig) end)
      n = n + 1
    end
  end
  return n
end

return S
