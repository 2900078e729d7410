--- spore.optim.Optimizer — shared by Momentum, SGD and Adam: parameter groups, learning
-- rates (number, per-step array indexed by global_step, or function(step) → lr), weight
-- decay (ungrouped: every parameter whose name lacks "beta"/"gamma"), loss_scale, and
-- named state Parameters so that checkpoints load into the optimizer in place.
-- The state tensors are the source of truth: step() reads learning_rate, momentum,
-- global_step... from them, so loading a checkpoint into them takes effect.
local T = require("spore.tensor")
local base = require("spore.nn.module")

local Optimizer = {}
Optimizer.__index = Optimizer
local M = { Optimizer = Optimizer }

--- new subclass
function M.class(name)
  local cls = setmetatable({}, { __index = Optimizer })
  cls.__index = cls
  cls.__name = name
  return cls
end

local function is_param(p) return type(p) == "table" and p.__parameter end

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
  for gi, g in ipairs(list) do
    local grp = { params = {}, lr = g.lr or g.learning_rate, weight_decay = g.weight_decay }
    if type(g.params) == "table" and g.params.trainable_params then g.params = g.params:trainable_params() end
    for _, p in ipairs(g.params or {}) do
      if not is_param(p) then error("optimizer: group " .. gi .. " holds something that is not a Parameter", 3) end
      grp.params[#grp.params + 1] = p
      self.params[#self.params + 1] = p
      p.__group = grp
    end
    self.groups[gi] = grp
  end
  self.lr_spec = learning_rate
  self.state = {} -- ordered array of {name, Parameter}
  return self
end

local function scalar(v, name)
  local t = T.empty({}, "float32")
  t:fill_(v)
  return base.Parameter(t, name, false)
end
M.scalar = scalar

--- learning_rate state: 0-d for a fixed lr or function, 1-D for a per-step array.
function Optimizer:_lr_param(spec, name)
  if type(spec) == "table" and getmetatable(spec) == nil then
    if #spec == 0 then error("optimizer: learning-rate array is empty", 4) end
    local t = T.from_table(spec, "float32")
    return base.Parameter(t, name, false)
  elseif type(spec) == "function" then
    return scalar(spec(0), name)
  elseif type(spec) == "number" then
    return scalar(spec, name)
  elseif type(spec) == "table" and getmetatable(spec) == T.Tensor then
    local t = spec:clone("float32")
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

--- Per-parameter zero-filled state (moments.<name>...), allocated once.
function Optimizer:_slots(prefix, init)
  local r = {}
  for i, p in ipairs(self.params) do
    local t = T.zeros(p.data:shape(), "float32")
    if init and init ~= 0 then t:fill_(init) end
    r[i] = self:_add_state(prefix .. "." .. p.name, base.Parameter(t, prefix .. "." .. p.name, false))
  end
  return r
end

function Optimizer:_global_step_param()
  local t = T.zeros({ 1 }, "int32")
  return base.Parameter(t, "global_step", false)
end

function Optimizer:global_step() return tonumber(self.global_step_param.data:ptr()[0]) end

local function lr_at(spec_param, spec, step)
  if type(spec) == "function" then return spec(step) end
  local t = spec_param.data
  local n = t:numel()
  if t:dim() == 0 or n == 1 then return tonumber(t:ptr()[0]) end
  local i = step
  if i >= n then i = n - 1 end
  return tonumber(t:ptr()[i])
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

--- The learning rate of the next step (of group gi, default 1).
function Optimizer:get_lr(gi)
  local step = self:global_step()
  local grp = self.groups[gi or 1]
  if grp and grp.lr_param then return lr_at(grp.lr_param, grp.lr_spec, step) end
  return lr_at(self.lr_param, self.lr_spec, step)
end

--- Index of the parameter group of this optimizer that holds p (1 when ungrouped).
function Optimizer:group_index(p)
  for k, g in ipairs(self.groups) do if g == p.__group then return k end end
  return 1
end

--- Weight decay of parameter p.
function Optimizer:decay_of(p)
  local grp = p.__group
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

--- Zero the gradients of the optimised parameters.
function Optimizer:zero_grad()
  for _, p in ipairs(self.params) do if p.grad then p.grad:zero_() end end
end

-- shared step prologue: lr per group for this step, then global_step += 1
function Optimizer:_begin_step()
  local lrs = {}
  for gi = 1, #self.groups do lrs[gi] = self:get_lr(gi) end
  local gs = self.global_step_param.data:ptr()
  gs[0] = gs[0] + 1
  for _, g in ipairs(self.groups) do
    if g.lr_param and type(g.lr_spec) == "function" then g.lr_param.data:fill_(g.lr_spec(gs[0])) end
  end
  if type(self.lr_spec) == "function" and not self.groups[1].lr_param then
    self.lr_param.data:fill_(self.lr_spec(gs[0]))
  end
  return lrs
end

--- Should p be updated? (trainable and has a gradient)
function Optimizer:active(p) return p.requires_grad and p.grad ~= nil end

return M
