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

--- check_options(what, opts, allowed, refused, types) — an unknown key is an error naming
-- it; a MindSpore option spore does not implement (refused: key → reason) is refused by name;
-- a value of the wrong type is an error naming the key.
function Optimizer.check_options(what, opts, allowed, refused, types)
  return require("spore.opts").check(what, opts, allowed, refused, types, 4)
end

local function is_param(p) return type(p) == "table" and p.__parameter end

--- true for a function or a table with a __call metamethod (a schedule object)
local function is_callable(x)
  if type(x) == "function" then return true end
  local mt = type(x) == "table" and getmetatable(x)
  return mt and type(mt) == "table" and mt.__call ~= nil or false
end
Optimizer.is_callable = is_callable

-- MindSpore's group keys (Optimizer._check_group_params): params, lr, weight_decay,
-- grad_centralization, order_params
local GROUP_KEYS = { "params", "lr", "weight_decay", "grad_centralization", "order_params" }
local GROUP_TYPES = { grad_centralization = "boolean", lr = { "number", "table", "function" },
  weight_decay = { "number", "function", "table" } }

local function check_wd(what, wd, level)
  if wd == nil then return nil end
  if type(wd) == "number" then
    if wd < 0 or wd ~= wd then error(what .. ": weight_decay must be >= 0, got " .. wd, level) end
    return wd
  end
  if is_callable(wd) then return wd end
  error(what .. ": weight_decay must be a number or a function(global_step) (MindSpore: a Cell), got " .. type(wd),
    level)
end

-- params: array of Parameters | a module (its trainable_params) | array of groups
-- {params=, lr=, weight_decay=, grad_centralization=} and at most one {order_params=}
-- (MindSpore's keys and rules: see Optimizer._init_group_params)
function Optimizer:_init_common(params, learning_rate, opts, cls_opts)
  opts = opts or {}
  cls_opts = cls_opts or {}
  if type(params) == "table" and params.trainable_params then params = params:trainable_params() end
  if type(params) ~= "table" or #params == 0 then error("optimizer: params must be a non-empty array of Parameters or groups", 3) end
  self.groups, self.params = {}, {}
  self.weight_decay = check_wd("optimizer", opts.weight_decay, 4) or 0
  self.loss_scale = opts.loss_scale or 1
  if type(self.loss_scale) ~= "number" or self.loss_scale <= 0 then error("optimizer: loss_scale must be > 0", 3) end
  local grouped = not is_param(params[1])
  self.grouped = grouped
  local list = grouped and params or { { params = params } }
  -- Parameter → index of its group in THIS optimizer
  self._group_of = {}
  local order
  for gi, g in ipairs(list) do
    if grouped then
      if type(g) ~= "table" or is_param(g) then
        error("optimizer: params must be all Parameters or all groups (tables), item " .. gi .. " is not a group", 3)
      end
      if g.learning_rate ~= nil and g.lr == nil then
        error(("optimizer group %d: unknown option 'learning_rate' (MindSpore's group key is 'lr')"):format(gi), 3)
      end
      require("spore.opts").check("optimizer group " .. gi, g, GROUP_KEYS, cls_opts.group_refused, GROUP_TYPES, 4)
    end
    if g.order_params ~= nil then
      if next(g, nil) ~= "order_params" or next(g, "order_params") ~= nil then
        error(("optimizer group %d: a group with 'order_params' must hold no other key (as MindSpore)"):format(gi), 3)
      end
      local op = g.order_params
      if type(op) == "table" and op.parameters then op = op:parameters() end
      if type(op) ~= "table" then error(("optimizer group %d: order_params must be an array of Parameters"):format(gi), 3) end
      order = op
      self.groups[gi] = { params = {}, order_only = true }
    else
      local grp = { params = {}, lr = g.lr, weight_decay = check_wd("optimizer group " .. gi, g.weight_decay, 4),
        grad_centralization = g.grad_centralization == true }
      local gp = g.params
      if type(gp) == "table" and gp.trainable_params then gp = gp:trainable_params() end
      if type(gp) ~= "table" or #gp == 0 then
        error(("optimizer group %d: params must be a non-empty array of Parameters"):format(gi), 3)
      end
      for _, p in ipairs(gp) do
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
  end
  if #self.params == 0 then error("optimizer: the groups hold no Parameter", 3) end
  if order then
    -- MindSpore's _order_and_adjust_group_params: same parameters, the order of order_params
    if #order ~= #self.params then
      error(("optimizer: order_params holds %d parameters, the groups %d (they must be the same parameters)")
        :format(#order, #self.params), 3)
    end
    local seen = {}
    for i, p in ipairs(order) do
      if not is_param(p) or not self._group_of[p] then
        error(("optimizer: order_params item %d ('%s') is in no group"):format(i, is_param(p) and p.name or type(p)), 3)
      end
      if seen[p] then error(("optimizer: order_params lists '%s' twice"):format(p.name), 3) end
      seen[p] = true
    end
    self.params = { unpack(order) }
  end
  self.lr_spec = learning_rate
  self.state = {} -- algorithm state (after the parameters), ordered {name, Parameter}
  self.state_head, self.state_tail = {}, {}
  self.device = self.params[1].data:device()
  self:_build_flat()
  -- MindSpore's order: global_step, the fixed learning rates, (the parameters), the
  -- algorithm's state, then learning rates that are cells (arrays, schedules)
  self.global_step_param = self:_add_state("global_step", self:_global_step_param(), "head")
  self:_add_lr_state()
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
        local dk = type(decay) == "number" and string.format("%.17g", decay) or tostring(decay)
        local key = dev .. "|" .. p.data:dtype() .. "|" .. dk
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
      local dd = type(b.info.decay) == "number" and ("%g"):format(b.info.decay) or "dynamic"
      b.info.name = ("group %d (%s, %s, weight decay %s)"):format(gi, b.info.device, b.info.dtype, dd)
      local fb = Flat.new(b.params, b.info)
      fb.group = gi
      self.buckets[#self.buckets + 1] = fb
      for i, p in ipairs(b.params) do self._where[p] = { fb, i } end
    end
  end
  -- spore.dist with shard_optimizer already running: each bucket holds only this rank's slots
  local dist = package.loaded["spore.dist"]
  if dist and dist.active and dist.shard_optimizer and dist.size > 1 then
    require("spore.dist.shard").plan(self, dist)
  end
end

--- A 0-d float32 state Parameter holding v (on device, default cpu).
function Optimizer.scalar(v, name, device)
  local t = T.empty({}, "float32", device)
  t:fill_(v)
  return base.Parameter(t, name, false)
end

--- learning_rate state: 0-d for a fixed lr or function/schedule, 1-D for a per-step array.
function Optimizer:_lr_param(spec, name)
  if type(spec) == "table" and getmetatable(spec) == nil then
    if #spec == 0 then error("optimizer: learning-rate array is empty", 4) end
    for i, v in ipairs(spec) do
      if type(v) ~= "number" or v < 0 then error(("optimizer: learning-rate array item %d must be a number >= 0"):format(i), 4) end
    end
    local t = T.from_table(spec, "float32"):to(self.device)
    return base.Parameter(t, name, false)
  elseif is_callable(spec) or (type(spec) == "table" and spec.__lr_schedule) then
    return Optimizer.scalar(spec(0), name, self.device)
  elseif type(spec) == "number" then
    if spec < 0 or spec ~= spec then error("optimizer: learning rate must be >= 0, got " .. spec, 4) end
    return Optimizer.scalar(spec, name, self.device)
  elseif type(spec) == "table" and getmetatable(spec) == T.Tensor then
    if spec:dim() > 1 then error("optimizer: a learning-rate Tensor must be 0-d or 1-D, got " .. spec:dim() .. "-D", 4) end
    local t = spec:clone("float32"):to(self.device)
    return base.Parameter(t, name, false)
  end
  error("optimizer: learning_rate must be a number, an array, a Tensor or a function(step), got " .. type(spec), 4)
end

-- is an lr spec dynamic (MindSpore: a 1-D Tensor / list / LearningRateSchedule)?
local function lr_dynamic(spec)
  if type(spec) == "number" then return false end
  if type(spec) == "table" and getmetatable(spec) == T.Tensor then return spec:dim() == 1 end
  return true
end

--- Add a named state Parameter; where: "head" (before the parameters: global_step and fixed
-- learning rates), nil (the algorithm's state, after the parameters) or "tail" (learning
-- rates that MindSpore keeps in cells: arrays and schedules, saved last).
function Optimizer:_add_state(name, p, where)
  p.name = name
  local list = where == "head" and self.state_head or where == "tail" and self.state_tail or self.state
  list[#list + 1] = { name, p }
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
    local away
    if w then
      t = views[w[1]][w[2]]
      -- state another rank holds (spore.dist.shard.plan): named, with an empty tensor
      if t == nil then t, away = T.empty({ 0 }, "float32", p.data:device()), true end
    else -- an empty parameter: nothing to update, no buffer
      t = T.empty(p.data:shape(), "float32", p.data:device()):fill_(init or 0)
    end
    r[i] = self:_add_state(name, base.Parameter(t, name, false))
    local plan = rawget(self, "_shard_plan")
    if plan and w then
      rawset(r[i], "shard_rank", plan.owner[p])
      rawset(r[i], "shard_shape", p.data:shape())
      if away then rawset(r[i], "shard_owner", plan.owner[p]) end
    end
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
  if is_callable(spec) or (type(spec) == "table" and spec.__lr_schedule) then return spec(step) end
  local t = spec_param.data
  local n = t:numel()
  if t:dim() == 0 then return t:item() end
  if step >= n then
    if soft then return nil end
    error(("optimizer: the learning-rate array '%s' has %d values and step %d needs value %d (0-based): it has run out "
      .. "(MindSpore fails here too: its Gather of learning_rate[global_step] is out of range)"):format(
      spec_param.name, n, step + 1, step), 0)
  end
  return t:get({ step + 1 })
end

--- learning_rate state, as MindSpore names and orders it: "learning_rate" when no group has
-- its own lr; else "learning_rate_group_<i>" (i: the 0-based position of the group in the
-- list given) for each group with an lr, and "learning_rate" shared by the groups without.
-- Listed in order of first use by the (ordered) parameters; before the parameters when
-- every lr is a number, after the algorithm's state when any is an array or schedule.
function Optimizer:_add_lr_state()
  local grouped_lr = false
  for _, g in ipairs(self.groups) do if g.lr ~= nil then grouped_lr = true end end
  if not grouped_lr then
    local where = lr_dynamic(self.lr_spec) and "tail" or "head"
    self.lr_param = self:_add_state("learning_rate", self:_lr_param(self.lr_spec, "learning_rate"), where)
    for _, g in ipairs(self.groups) do g.lr_spec, g.lr_param = self.lr_spec, self.lr_param end
    return
  end
  local dynamic = lr_dynamic(self.lr_spec)
  local len0 = type(self.lr_spec) == "table" and getmetatable(self.lr_spec) == nil and #self.lr_spec or nil
  for i, g in ipairs(self.groups) do
    if g.lr ~= nil then
      if lr_dynamic(g.lr) then dynamic = true end
      local n = type(g.lr) == "table" and getmetatable(g.lr) == nil and #g.lr or nil
      if n and len0 and n ~= len0 then
        error(("optimizer group %d: its learning-rate array has %d values, learning_rate %d (MindSpore: they must "
          .. "be the same size)"):format(i, n, len0), 3)
      end
    end
  end
  local where = dynamic and "tail" or "head"
  local made = {}
  local default
  for _, p in ipairs(self.params) do
    local gi = self._group_of[p]
    local g = self.groups[gi]
    if not made[gi] then
      if g.lr ~= nil then
        local name = "learning_rate_group_" .. (gi - 1)
        g.lr_spec = g.lr
        g.lr_param = self:_add_state(name, self:_lr_param(g.lr, name), where)
      else
        if not default then
          default = self:_add_state("learning_rate", self:_lr_param(self.lr_spec, "learning_rate"), where)
        end
        g.lr_spec, g.lr_param = self.lr_spec, default
      end
      made[gi] = true
    end
  end
  self.lr_param = self.groups[self._group_of[self.params[1]]].lr_param
end

local function group_lr(self, gi, step, soft)
  local grp = gi and self.groups[gi] or self.groups[self._group_of[self.params[1]]]
  return lr_at(grp.lr_param, grp.lr_spec, step, soft)
end

--- The learning rate of the next step (of group gi, default: the first parameter's group);
-- nil once a learning-rate array has run out (the next step would be an error).
function Optimizer:get_lr(gi) return group_lr(self, gi, self:global_step(), true) end

--- Index of the parameter group of this optimizer that holds p (1 when p is not in it).
function Optimizer:group_index(p) return self._group_of[p] or 1 end

--- Weight decay of parameter p (a number, or a function(global_step) for a dynamic decay),
-- as MindSpore decides it: in a grouped optimizer, the group's weight_decay, else the
-- optimizer's, for every parameter of the group; ungrouped, the optimizer's for every
-- parameter whose name lacks "beta" and "gamma" (MindSpore's decay filter). Fixed when the
-- optimizer is made (the flat buckets are split by it).
function Optimizer:decay_of(p)
  local gi = self._group_of[p]
  local grp = gi and self.groups[gi]
  if self.grouped and grp then
    if grp.weight_decay ~= nil then return grp.weight_decay end
    return self.weight_decay
  end
  if self.weight_decay == 0 then return 0 end
  if p.name:find("beta", 1, true) or p.name:find("gamma", 1, true) then return 0 end
  return self.weight_decay
end

--- State then weights in MindSpore's order, as {name, Parameter} pairs: global_step, the
-- fixed learning rates, the parameters, the algorithm's state (momentum, moments...), then
-- learning rates that are arrays or schedules. A training network lists its own weights
-- first (spore.train.callbacks.training_state), so they come before global_step there.
function Optimizer:parameters_and_names()
  local r = {}
  for _, e in ipairs(self.state_head) do r[#r + 1] = { e[1], e[2] } end
  for _, p in ipairs(self.params) do r[#r + 1] = { p.name, p } end
  for _, e in ipairs(self.state) do r[#r + 1] = { e[1], e[2] } end
  for _, e in ipairs(self.state_tail) do r[#r + 1] = { e[1], e[2] } end
  return r
end
function Optimizer:parameters()
  local r = {}
  for i, e in ipairs(self:parameters_and_names()) do r[i] = e[2] end
  return r
end

--- Bytes of per-parameter state (moments, accum, ...) this optimizer holds in its flat
-- buffers: the whole state, or this rank's shard of it under optimizer-state sharding.
function Optimizer:slot_bytes()
  local n = 0
  for _, b in ipairs(self.buckets) do n = n + b:slot_bytes() end
  return n
end

--- Zero the gradients of the optimised parameters (one fill per bucket).
function Optimizer:zero_grad()
  for _, b in ipairs(self.buckets) do b:zero_grad() end
  for _, p in ipairs(self.params) do
    if p.grad and not self._where[p] then p.grad:zero_() end
  end
end

-- shared step prologue: lr per group for this step, each bucket's weight decay for this
-- step (b.decay_now; dynamic ones evaluated at global_step before the increment, as
-- MindSpore's get_weight_decay), then global_step += 1 (an engine op)
function Optimizer:_begin_step()
  local step = self:global_step()
  local lrs = {}
  for gi, g in ipairs(self.groups) do if not g.order_only then lrs[gi] = group_lr(self, gi, step) end end
  for _, b in ipairs(self.buckets) do
    local d = b.decay
    if type(d) ~= "number" then
      d = d(step)
      if type(d) ~= "number" then error("optimizer: the weight_decay function returned " .. type(d) .. ", expected a number", 0) end
    end
    b.decay_now = d
  end
  self.global_step_param.data:add_(1)
  local seen = {}
  for _, g in ipairs(self.groups) do
    local lp = g.lr_param
    if lp and not seen[lp] and (is_callable(g.lr_spec) or (type(g.lr_spec) == "table" and g.lr_spec.__lr_schedule)) then
      seen[lp] = true; lp.data:fill_(g.lr_spec(step + 1))
    end
  end
  self:_centralize()
  return lrs
end

-- gradient centralization (MindSpore's order: decay, then centralization, then the loss
-- scale): in each bucket of a group with grad_centralization, the decay is folded into the
-- gradient first (g += wd*loss_scale*p, b.decay_now becomes 0), then every gradient with
-- rank > 1 and shape[2] % 16 == 0 loses the mean of each of its rows (axes 2..n).
function Optimizer:_centralize()
  local K = require("ffi.nn")
  for _, b in ipairs(self.buckets) do
    local g = self.groups[b.group]
    if g.grad_centralization then
      b:sync()
      local runs = b:active_runs()
      if #runs > 0 and b.decay_now ~= 0 then
        for _, r in ipairs(runs) do
          local t = b:range(r[1], r[2])
          K.grad_centralize(t.grad, t.param, b.decay_now * self.loss_scale, 0)
        end
        b.decay_now = 0
      end
      for _, r in ipairs(runs) do
        for i = r[1], r[2] do
          local p = b.params[i]
          local shp = b.shapes[i]
          if #shp > 1 and shp[2] % 16 == 0 then K.grad_centralize(p.grad, nil, 0, shp[1]) end
        end
      end
    end
  end
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
