--- spore.nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.9, affine=true, gamma_init="ones",
-- beta_init="zeros", moving_mean_init="zeros", moving_var_init="ones", use_batch_statistics=nil)
-- or BatchNorm2d(n, {eps=, momentum=, ...}). Parameters in MindSpore's order: moving_mean,
-- moving_variance (not trainable), gamma, beta. Train: batch statistics and
-- moving = momentum*moving + (1-momentum)*batch (unbiased variance); eval: moving statistics.
local base = require("spore.nn.module")
local I = require("spore.nn.initializer")
local K = require("ffi.nn")

local opts = require("spore.opts")

local BN = base.class("BatchNorm2d")

function BN:__init(n, eps, momentum, affine, gamma_init, beta_init, mm_init, mv_init, use_batch_statistics)
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    error("BatchNorm2d: num_features must be a positive integer, got " .. tostring(n), 3)
  end
  if type(eps) == "table" then
    if momentum ~= nil or affine ~= nil or gamma_init ~= nil or beta_init ~= nil or mm_init ~= nil or mv_init ~= nil
        or use_batch_statistics ~= nil then
      error("BatchNorm2d: arguments after the options table; give them by name in it", 3)
    end
    local o = opts.check("BatchNorm2d", eps, { "eps", "momentum", "affine", "gamma_init", "beta_init",
      "moving_mean_init", "moving_var_init", "use_batch_statistics", "data_format", "dtype" }, nil,
      { eps = "number", momentum = "number", affine = "boolean", use_batch_statistics = "boolean" }, 4)
    opts.defaults_only("BatchNorm2d", o, { data_format = { "NCHW", "tensors are NCHW" },
      dtype = { "float32", "statistics are float32" } }, 4)
    eps, momentum, affine, gamma_init, beta_init = o.eps, o.momentum, o.affine, o.gamma_init, o.beta_init
    mm_init, mv_init, use_batch_statistics = o.moving_mean_init, o.moving_var_init, o.use_batch_statistics
  end
  self.num_features = n
  self.eps = eps or 1e-5
  self.momentum = momentum or 0.9
  if affine == nil then affine = true end
  self.use_batch_statistics = use_batch_statistics
  local P = base.Parameter
  self:register_parameter("moving_mean", P(I.initialize(mm_init or "zeros", { n }), "moving_mean", false))
  self:register_parameter("moving_variance", P(I.initialize(mv_init or "ones", { n }), "moving_variance", false))
  self:register_parameter("gamma", P(I.initialize(gamma_init or "ones", { n }), "gamma", affine))
  self:register_parameter("beta", P(I.initialize(beta_init or "zeros", { n }), "beta", affine))
end
function BN:__repr() return ("BatchNorm2d(%d, eps=%g, momentum=%g)"):format(self.num_features, self.eps, self.momentum) end

function BN:_batch_stats()
  if self.use_batch_statistics == nil then return self.training end
  return self.use_batch_statistics
end

function BN:forward(x)
  if type(x) ~= "table" or not x.shape then error("BatchNorm2d: expected an input Tensor, got " .. type(x), 2) end
  local s = x:shape()
  if #s ~= 4 or s[2] ~= self.num_features then
    error(("BatchNorm2d: expected input [N, %d, H, W], got [%s]"):format(self.num_features, table.concat(s, ", ")), 2)
  end
  local out, sm, si, bs = self:_stat_buffers(x, self)
  K.batchnorm_forward(out, sm, si, x, self.gamma.data, self.beta.data, self.moving_mean.data,
    self.moving_variance.data, bs, bs and self.training, self.momentum, self.eps)
  return out
end

-- the output buffer (owner's), the saved statistics and whether batch statistics are used
function BN:_stat_buffers(x, owner)
  local dev = x:device()
  local out = owner:buffer("output", x:shape(), nil, dev, base.channels_last(x)) -- x's layout
  local sm = self:buffer("save_mean", { self.num_features }, nil, dev)
  local si = self:buffer("save_invstd", { self.num_features }, nil, dev)
  local bs = self:_batch_stats()
  self._used_batch = bs
  return out, sm, si, bs
end

--- Training-time fusion (spore.nn.chain): this BatchNorm, then + residual (optional) and
-- ReLU (relu true), into owner's "output" buffer (the ReLU's, or a residual block's).
function BN:_forward_act(x, residual, relu, owner)
  local out, sm, si, bs = self:_stat_buffers(x, owner)
  K.batchnorm_act_forward(out, sm, si, x, self.gamma.data, self.beta.data, self.moving_mean.data,
    self.moving_variance.data, bs, bs and self.training, self.momentum, self.eps, residual, relu)
  return out
end

--- The backward of this BatchNorm and the ReLU after it (whose output is y) in one kernel.
function BN:_backward_relu(x, gout, y, need_input_grad)
  local gx
  if need_input_grad ~= false then gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x)) end
  K.batchnorm_relu_backward(gx, self:grad_of(self.gamma), self:grad_of(self.beta), gout, y, x, self.gamma.data,
    self.save_mean, self.save_invstd, self._used_batch)
  return gx
end

function BN:backward(x, gout, need_input_grad)
  local gx
  if need_input_grad ~= false then gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x)) end
  K.batchnorm_backward(gx, self:grad_of(self.gamma), self:grad_of(self.beta), gout, x, self.gamma.data,
    self.save_mean, self.save_invstd, self._used_batch)
  return gx
end

return BN
