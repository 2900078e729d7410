--- spore.optim.Optimizer — the base class of Momentum, SGD and Adam: parameter groups,
-- learning rates (number, per-step array indexed by global_step, Tensor, or
-- function(step) → lr), weight decay (ungrouped: every parameter whose name lacks
-- "beta"/"gamma"), loss_scale, flat training state, and named state Parameters so that
-- checkpoints load into the optimizer in place.
--
-- The state tensors are the source of truth: step() reads learning_rate, momentum,
-- global_step... from them through engine reads, so loading a checkpoint into them takes
-- effect. Group membership lives in the optimizer (never on the shared Parameters), so two
-- optimizers over the same parameters do not see each other's groups.
--
-- Flat state (spore.optim.Flat): the parameters of a group are split into buckets by
-- (device, dtype, weight decay); each bucket keeps parameters, gradients and every slot in
-- one buffer, and step() makes one engine call per bucket (more only while some parameter
-- of the bucket is frozen or has no gradient yet: those are skipped, as MindSpore's
-- parameters outside the optimizer).
local T = require("spore.tensor")
local base = require("spore.nn.module")
local Flat = require("spore.optim.flat")
local class = require("spore.class")

local Optimizer = class("Optimizer")

--- Optimizer.new: the base class is not an algorithm.
function Optimizer.new()
  error("spore.optim.Optimizer is a base class: use spore.optim.Momentum, SGD or Adam", 2)
end

--- "Momentum(3 parameters)"
function Optimizer:__tostring() return getmetatable(self).__name .. "(" .. #self.params .. " parameters)" end

--- Optimizer.class(name) → a subclass (spore.class); `Cls(...)` and `Cls.new(...)` construct
-- (each algorithm defines its own new).
function Optimizer.class(name) return class(name, Optimizer) end

--- check_options(what, opts, allowed, refused) — an unknown key is an error naming it; a
-- MindSpore option spore does not implement (refused: key → reason) is refused by name.
function Optimizer.check_options(what, opts, allowed, refused)
  return require("spore.opts").check(what, opts, allowed, refused, nil, 4)
end

local function is_param(p) return type(p) == "table" and p.__parameter end

local GROUP_KEYS = { params = true, lr = true, learning_rate = true, weight_decay = true }
local GROUP_REFUSED = { grad_centralization = "gradient centralization is not implemented",
  order_params = "order_params is not implemented" }

-- params: array of Parameters | a module (its trainable_params) | array of groups
-- {params=, lr= (or learning_rate=), weight_decay=}
function Optimizer:_init_common(params, learning_rate, opts)
  opts = opts or {}
  if type(params) == "table" and params.trainable_params then params = params:trainable_params() end
  if type(params) ~= "table" or #params == 0 then error("optimizer: params must be a non-empty array of Parameters or groups", 3) end
  self.groups, self.params = {}, {}
  self.weight_decay = opts.weight_decay or 0
  self.loss_scale = opts.loss_scale or 1
  if self.loss_scale <= 0 then error("optimizer: loss_scale must be > 0", 3) end
  local grouped = not is_param(params[1])
  self.grouped = grouped
  local list = grouped and params or { { params = params } }
  -- Parameter → index of its group in THIS optimizer
  self._group_of = {}
  for gi, g in ipairs(list) do
    if grouped then Optimizer.check_options("optimizer group " .. gi, g, GROUP_KEYS, GROUP_REFUSED) end
    local grp = { params = {}, lr = g.lr or g.learning_rate, weight_decay = g.weight_decay }
    local gp = g.params
    if type(gp) == "table" and gp.trainable_params then gp = gp:trainable_params() end
    for _, p in ipairs(gp or {}) do
      if not is_param(p) then error("optimizer: group " .. gi .. " holds something that is not a Parameter", 3) end
      if self._group_of[p] then
        local where = self._group_of[p] == gi and ("in group " .. gi) or ("in groups " .. self._group_of[p] .. " and " .. gi)
        error("optimizer: parameter '" .. tostring(p.name) .. "' appears twice (" .. where .. ")", 3)
      end
      grp.params[#grp.params + 1] = p
      self.params[#self.params + 1] = p
      self._group_of[p] = gi
    end
    self.groups[gi] = grp
  end
  if #self.params == 0 then error("optimizer: the groups hold no Parameter", 3) end
  self.lr_spec = learning_rate
  self.state = {} -- ordered array of {name, Parameter}
  self.device = self.params[1].data:device()
  self:_build_flat()
  return self
end

-- Buckets: per group, per (device, dtype, decay), in order of first appearance. All the
-- parameters of a group must share one device.
function Optimizer:_build_flat()
  self.buckets, self._where = {}, {}
  for gi, grp in ipairs(self.groups) do
    local by_key, order, dev0 = {}, {}, nil
    for _, p in ipairs(grp.params) do
      local dev = p.data:device()
      if dev0 and dev ~= dev0.dev then
        error(("optimizer: the parameters of group %d must share one device: '%s' is on %s, '%s' on %s")
          :format(gi, p.name, dev, dev0.name, dev0.dev), 3)
      end
      dev0 = dev0 or { dev = dev, name = p.name }
      if p.data:numel() > 0 then
        local decay = self:decay_of(p)
        local key = dev .. "|" .. p.data:dtype() .. "|" .. string.format("%.17g", decay)
        local b = by_key[key]
        if not b then
          b = { params = {}, info = { device = dev, dtype = p.data:dtype(), decay = decay, group = gi } }
          by_key[key] = b
          order[#order + 1] = b
        end
        b.params[#b.params + 1] = p
      end
    end
    for _, b in ipairs(order) do
      b.info.name = ("group %d (%s, %s, weight decay %g)"):format(gi, b.info.device, b.info.dtype, b.info.decay)
      local fb = Flat.new(b.params, b.info)
      fb.group = gi
      self.buckets[#self.buckets + 1] = fb
      for i, p in ipairs(b.params) do self._where[p] = { fb, i } end
    end
  end
end

--- A 0-d float32 state Parameter holding v (on device, default cpu).
function Optimizer.scalar(v, name, device)
  local t = T.empty({}, "float32", device)
  t:fill_(v)
  return base.Parameter(t, name, false)
end

--- learning_rate state: 0-d for a fixed lr or function, 1-D for a per-step array.
function Optimizer:_lr_param(spec, name)
  if type(spec) == "table" and getmetatable(spec) == nil then
    if #spec == 0 then error("optimizer: learning-rate array is empty", 4) end
    local t = T.from_table(spec, "float32"):to(self.device)
    return base.Parameter(t, name, false)
  elseif type(spec) == "function" or (type(spec) == "table" and spec.__lr_schedule) then
    return Optimizer.scalar(spec(0), name, self.device)
  elseif type(spec) == "number" then
    return Optimizer.scalar(spec, name, self.device)
  elseif type(spec) == "table" and getmetatable(spec) == T.Tensor then
    local t = spec:clone("float32"):to(self.device)
    return base.Parameter(t, name, false)
  end
  error("optimizer: learning_rate must be a number, an array, a Tensor or a function(step), got " .. type(spec), 4)
end

function Optimizer:_add_state(name, p)
  p.name = name
  self.state[#self.state + 1] = { name, p }
  self.state_by_name = self.state_by_name or {}
  self.state_by_name[name] = p
  return p
end

--- Per-parameter state (moments.<name>...), float32 filled with init (default 0): one flat
-- buffer per bucket, one named state Parameter per parameter (in self.params order) whose
-- data is a view into it. Returns the array of state Parameters.
function Optimizer:_slots(prefix, init)
  local views = {}
  for _, b in ipairs(self.buckets) do views[b] = b:add_slot(prefix, init) end
  local r = {}
  for i, p in ipairs(self.params) do
    local name = prefix .. "." .. p.name
    local w = self._where[p]
    local t
    if w then
      t = views[w[1]][w[2]]
    else -- an empty parameter: nothing to update, no buffer
      t = T.empty(p.data:shape(), "float32", p.data:device()):fill_(init or 0)
    end
    r[i] = self:_add_state(name, base.Parameter(t, name, false))
    if w then w[1]:own_slot(prefix, w[2], r[i]) end
  end
  return r
end

function Optimizer:_global_step_param()
  local t = T.empty({ 1 }, "int32", self.device):zero_()
  return base.Parameter(t, "global_step", false)
end

--- The number of steps taken (the global_step state, read through the engine).
function Optimizer:global_step() return self.global_step_param.data:item() end

-- lr of a step from a learning_rate state tensor (arrays: 0-based step). An array that has
-- run out is an error, as in MindSpore (its Gather of learning_rate[global_step] fails:
-- "For 'Gather', the 'input_indices' should be in the range [0, n), but got n"); with
-- soft = true it is nil instead (get_lr after the last step).
local function lr_at(spec_param, spec, step, soft)
  if type(spec) == "function" or (type(spec) == "table" and spec.__lr_schedule) then return spec(step) end
  local t = spec_param.data
  local n = t:numel()
  if t:dim() == 0 then return t:item() end
  if step >= n then
    if soft then return nil end
    error(("optimizer: the learning-rate array has %d values and step %d needs value %d (0-based): it has run out "
      .. "(MindSpore fails here too: its Gather of learning_rate[global_step] is out of range)"):format(n, step + 1, step), 0)
  end
  return t:get({ step + 1 })
end

--- learning_rate state: "learning_rate", or with per-group learning rates one
-- "learning_rate_group_<i>" (0-based) per group, as MindSpore names them.
function Optimizer:_add_lr_state()
  local grouped_lr = false
  for _, g in ipairs(self.groups) do if g.lr ~= nil then grouped_lr = true end end
  if not grouped_lr then
    self.lr_param = self:_add_state("learning_rate", self:_lr_param(self.lr_spec, "learning_rate"))
    return
  end
  for i, g in ipairs(self.groups) do
    g.lr_spec = g.lr ~= nil and g.lr or self.lr_spec
    local name = "learning_rate_group_" .. (i - 1)
    g.lr_param = self:_add_state(name, self:_lr_param(g.lr_spec, name))
  end
  self.lr_param = self.groups[1].lr_param
end

local function group_lr(self, gi, step, soft)
  local grp = self.groups[gi or 1]
  if grp and grp.lr_param then return lr_at(grp.lr_param, grp.lr_spec, step, soft) end
  return lr_at(self.lr_param, self.lr_spec, step, soft)
end

--- The learning rate of the next step (of group gi, default 1); nil once a learning-rate
-- array has run out (the next step would be an error).
function Optimizer:get_lr(gi) return group_lr(self, gi, self:global_step(), true) end

--- Index of the parameter group of this optimizer that holds p (1 when p is not in it).
function Optimizer:group_index(p) return self._group_of[p] or 1 end

--- Weight decay of parameter p: its group's weight_decay, else the optimizer's for every
-- parameter whose name lacks "beta" and "gamma" (MindSpore's default decay filter). Fixed
-- when the optimizer is made (the flat buckets are split by it).
function Optimizer:decay_of(p)
  local gi = self._group_of[p]
  local grp = gi and self.groups[gi]
  if grp and grp.weight_decay ~= nil then return grp.weight_decay end
  if self.weight_decay == 0 then return 0 end
  if p.name:find("beta", 1, true) or p.name:find("gamma", 1, true) then return 0 end
  return self.weight_decay
end

--- Network weights then state, as {name, Parameter} pairs (MindSpore's order).
function Optimizer:parameters_and_names()
  local r = {}
  for _, p in ipairs(self.params) do r[#r + 1] = { p.name, p } end
  for _, e in ipairs(self.state) do r[#r + 1] = { e[1], e[2] } end
  return r
end
function Optimizer:parameters()
  local r = {}
  for i, e in ipairs(self:parameters_and_names()) do r[i] = e[2] end
  return r
end

--- Zero the gradients of the optimised parameters (one fill per bucket).
function Optimizer:zero_grad()
  for _, b in ipairs(self.buckets) do b:zero_grad() end
  for _, p in ipairs(self.params) do
    if p.grad and not self._where[p] then p.grad:zero_() end
  end
end

-- shared step prologue: lr per group for this step, then global_step += 1 (an engine op)
function Optimizer:_begin_step()
  local step = self:global_step()
  local lrs = {}
  for gi = 1, #self.groups do lrs[gi] = group_lr(self, gi, step) end
  self.global_step_param.data:add_(1)
  local function fn(s) return type(s) == "function" or (type(s) == "table" and s.__lr_schedule) end
  for _, g in ipairs(self.groups) do
    if g.lr_param and fn(g.lr_spec) then g.lr_param.data:fill_(g.lr_spec(step + 1)) end
  end
  if fn(self.lr_spec) and not self.groups[1].lr_param then
    self.lr_param.data:fill_(self.lr_spec(step + 1))
  end
  return lrs
end

--- Should p be updated? (trainable and has a gradient)
function Optimizer:active(p) return p.requires_grad and p.grad ~= nil end

--- for_runs(fn): restore the flat views, then call fn(bucket, tensors, i, j) for each run
-- of active parameters i..j of each bucket (tensors = bucket:range(i, j)); one call per
-- bucket when every parameter in it is active.
function Optimizer:for_runs(fn)
  for _, b in ipairs(self.buckets) do
    b:sync()
    for _, r in ipairs(b:active_runs()) do fn(b, b:range(r[1], r[2]), r[1], r[2]) end
  end
end

--- One update; implemented by each algorithm.
function Optimizer:step() error(self.__name .. ": step() is not implemented", 2) end

return Optimizer
