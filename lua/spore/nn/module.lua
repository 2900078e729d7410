--- spore.nn.Module — the module protocol (DESIGN.md): forward/backward, ordered
-- parameters in MindSpore order (own parameters first, then children in registration
-- order), train()/eval(), zero_grad(), replace(), freeze(), buffers reused between steps.
local T = require("spore.tensor")
local D = require("spore.device")
local class = require("spore.class")

local M = {}

--- Parameter(tensor, name, requires_grad) → {name, data, requires_grad, grad}.
-- Loading a checkpoint copies into param.data in place; modules read param.data on every call.
function M.Parameter(data, name, requires_grad)
  if not T.is_tensor(data) then error("Parameter: data must be a Tensor, got " .. type(data), 2) end
  if requires_grad == nil then requires_grad = true end
  return { name = name or "", data = data, requires_grad = requires_grad and true or false, grad = nil,
           __parameter = true }
end

local Module = class("Module")
local Module_call
M.Module = Module

local function is_module(v) return type(v) == "table" and rawget(v, "_modules") ~= nil and type(v.forward) == "function" end
local function is_parameter(v) return type(v) == "table" and rawget(v, "__parameter") == true end
M.is_module = is_module

-- Children and parameters are not plain fields of an instance: they live in _modules /
-- _params (ordered) and _mod_by / _par_by (by name), and reading net.fc finds them there
-- (after the class's methods). Assigning a module or a Parameter to a field registers it,
-- as MindSpore's Cell.__setattr__ does: `net.end_point = nn.Dense(2048, 5)` replaces the
-- child in place (same position, so the same parameter order) and a new name is appended.
local function install_index(cls)
  rawset(cls, "__index", function(t, k)
    local v = cls[k]
    if v ~= nil then return v end
    local mb = rawget(t, "_mod_by")
    if mb then
      v = mb[k]
      if v ~= nil then return v end
      return rawget(t, "_par_by")[k]
    end
  end)
end
install_index(Module)

Module.__newindex = function(t, k, v)
  if rawget(t, "_mod_by") then
    if is_module(v) then t:register_module(k, v); return end
    if is_parameter(v) then t:register_parameter(k, v); return end
    local mb, pb = rawget(t, "_mod_by"), rawget(t, "_par_by")
    if mb[k] ~= nil then
      error(("%s: cannot assign a %s to child module '%s' (assign a module, or use replace)"):format(
        getmetatable(t).__name, type(v), tostring(k)), 2)
    end
    if pb[k] ~= nil then
      if T.is_tensor(v) then pb[k].data = v; return end -- MindSpore: set_data
      error(("%s: cannot assign a %s to parameter '%s' (assign a Parameter or a Tensor)"):format(
        getmetatable(t).__name, type(v), tostring(k)), 2)
    end
  end
  rawset(t, k, v)
end

-- the constructor of every module class: __base_init, __init(...), then the move to the
-- default device (spore.device). Initialised on the cpu (seeded generator: identical values
-- on every device), then moved.
local function module_new(cls)
  return function(...)
    local o = setmetatable({}, cls)
    o:__base_init()
    if o.__init == Module.__init and select("#", ...) > 0 then
      -- a class with no constructor of its own would drop its arguments silently
      -- (nn.Flatten{start_dim = 2}, nn.ReLU(x)): spore implements MindSpore's defaults only
      local a = ...
      local what = type(a) == "table" and next(a) ~= nil and type(next(a)) == "string"
        and ("option '" .. next(a) .. "'") or ("a " .. type(a))
      error(("%s takes no arguments (spore implements MindSpore's defaults only), got %s"):format(
        cls.__name, what), 2)
    end
    o:__init(...)
    local dev = D.get()
    if dev ~= "cpu" then o:to(dev) end
    return o
  end
end
Module.new = module_new(Module)

--- class(name, parent=Module): a module subclass (spore.class); calling the class (or
-- its new) constructs. Instances get Module's __call (forward) and __tostring (__repr).
function M.class(name, parent)
  local cls = class(name, parent or Module)
  cls.new = module_new(cls)
  install_index(cls)
  return cls
end
local first_param
--- net(x, ...): forward. The top-level input moves to the device of the net's parameters
-- first when it lives elsewhere (as MindSpore moves host tensors to the device); a module
-- without parameters runs where its input is. Layers inside call forward().
Module_call = function(self, x, ...)
  if T.is_tensor(x) then
    local p = first_param(self)
    if p then
      local dev = p:device()
      if x:device() ~= dev then x = x:to(dev) end
    end
  end
  return self:forward(x, ...)
end
Module.__call = Module_call
Module.__tostring = function(self)
  -- [REPL hook, lua/spore/pretty.lua] a module with children prints as its tree of modules
  -- (parameter shapes and counts); a leaf prints as its __repr.
  if #self._modules > 0 then return require("spore.pretty").module(self) end
  return self:__repr()
end

function Module:__base_init()
  rawset(self, "_params", {}); rawset(self, "_modules", {})
  rawset(self, "_par_by", {}); rawset(self, "_mod_by", {})
  self.training = true
  self._device = D.get()
end
function Module:__init() end
function Module:__repr() return getmetatable(self).__name .. "()" end

local function check_name(who, name, what)
  if type(name) ~= "string" then
    error(("%s: the %s name must be a string, got %s"):format(who, what, type(name)), 3)
  end
  if name == "" or name:find(".", 1, true) then
    error(("%s: the %s name must be non-empty and contain no '.', got '%s'"):format(who, what, name), 3)
  end
end

--- Register a parameter under a local name (order matters: it is checkpoint order). A name
-- already registered is replaced in place.
function Module:register_parameter(name, param)
  name = tostring(name)
  rawset(self, name, nil)
  for _, e in ipairs(self._params) do
    if e[1] == name then e[2] = param; self._par_by[name] = param; param.name = name; return param end
  end
  self._params[#self._params + 1] = { name, param }
  self._par_by[name] = param
  param.name = name
  return param
end
--- Register a child module under a name (order matters). A name already registered is
-- replaced in place (same position).
function Module:register_module(name, mod)
  name = tostring(name)
  rawset(self, name, nil)
  for _, e in ipairs(self._modules) do
    if e[1] == name then e[2] = mod; self._mod_by[name] = mod; return mod end
  end
  self._modules[#self._modules + 1] = { name, mod }
  self._mod_by[name] = mod
  return mod
end
function Module:children() return self._modules end

--- MindSpore's Cell.insert_param_to_cell(param_name, param, check_name_contain_dot=true):
-- errors (as MindSpore's KeyError/TypeError) on an empty name, a name with '.', a name that
-- is already something else on the cell, or a param that is not a Parameter.
function Module:insert_param_to_cell(param_name, param, check_name_contain_dot)
  if param_name == nil or param_name == "" then
    error("insert_param_to_cell: the argument 'param_name' should not be None", 2)
  end
  if type(param_name) ~= "string" then error("insert_param_to_cell: 'param_name' must be a string, got " .. type(param_name), 2) end
  if check_name_contain_dot ~= false and param_name:find(".", 1, true) then
    error("insert_param_to_cell: the argument 'param_name' should not contain '.'", 2)
  end
  if not self._par_by[param_name] and self[param_name] ~= nil then
    error(("insert_param_to_cell: the %s parameter already exists in the network. Cannot insert another "
      .. "parameter with the same name."):format(param_name), 2)
  end
  if not is_parameter(param) then
    error("insert_param_to_cell: the argument 'param' must be a Parameter, got " .. type(param), 2)
  end
  return self:register_parameter(param_name, param)
end

--- MindSpore's Cell.insert_child_to_cell(child_name, child_cell).
function Module:insert_child_to_cell(child_name, child)
  check_name("insert_child_to_cell", child_name, "child")
  if not self._mod_by[child_name] and self[child_name] ~= nil then
    error(("insert_child_to_cell: the %s child cell already exists in the network. Cannot insert another "
      .. "child cell with the same name."):format(child_name), 2)
  end
  if not is_module(child) then error("insert_child_to_cell: the child must be a module, got " .. type(child), 2) end
  return self:register_module(child_name, child)
end

--- MindSpore's Cell.cells_and_names(): {name, module} pairs, the module itself first (name
-- ""), then every descendant depth first in registration order, each once.
function Module:cells_and_names(_, name_prefix)
  local out, seen = {}, {}
  local function walk(m, prefix)
    if seen[m] then return end
    seen[m] = true
    out[#out + 1] = { prefix, m }
    for _, e in ipairs(m._modules) do walk(e[2], prefix ~= "" and (prefix .. "." .. e[1]) or e[1]) end
  end
  walk(self, name_prefix or "")
  return out
end
--- MindSpore's Cell.name_cells(): {name = child} of the direct children; cells(): the children.
function Module:name_cells()
  local r = {}
  for _, e in ipairs(self._modules) do r[e[1]] = e[2] end
  return r
end
function Module:cells()
  local r = {}
  for i, e in ipairs(self._modules) do r[i] = e[2] end
  return r
end

--- Ordered array of {name, param} in MindSpore order; also (re)sets param.name.
function Module:parameters_and_names(prefix, out, seen)
  out, seen = out or {}, seen or {}
  prefix = prefix or ""
  for _, e in ipairs(self._params) do
    local p = e[2]
    if not seen[p] then
      seen[p] = true
      p.name = prefix .. e[1]
      out[#out + 1] = { p.name, p }
    end
  end
  for _, e in ipairs(self._modules) do e[2]:parameters_and_names(prefix .. e[1] .. ".", out, seen) end
  return out
end
--- Ordered array of Parameters (trainable and not).
function Module:parameters()
  local r = {}
  for i, e in ipairs(self:parameters_and_names()) do r[i] = e[2] end
  return r
end
--- MindSpore's get_parameters(expand=true): every Parameter in order; expand=false: this
-- module's own only.
function Module:get_parameters(expand)
  if expand == false then
    local r = {}
    for _, e in ipairs(self._params) do r[#r + 1] = e[2] end
    self:parameters_and_names() -- names stay the full paths
    return r
  end
  return self:parameters()
end
--- Ordered array of the Parameters with requires_grad (recurse=false: this module's own).
function Module:trainable_params(recurse)
  local r = {}
  for _, p in ipairs(self:get_parameters(recurse)) do if p.requires_grad then r[#r + 1] = p end end
  return r
end
--- Ordered array of the Parameters without requires_grad (frozen weights, BatchNorm moving
-- statistics), as MindSpore's untrainable_params (recurse=false: this module's own).
function Module:untrainable_params(recurse)
  local r = {}
  for _, p in ipairs(self:get_parameters(recurse)) do if not p.requires_grad then r[#r + 1] = p end end
  return r
end
--- Map name → Parameter.
function Module:parameters_dict()
  local r = {}
  for _, e in ipairs(self:parameters_and_names()) do r[e[1]] = e[2] end
  return r
end

function Module:train(mode)
  if mode == nil then mode = true end
  self.training = mode and true or false
  for _, e in ipairs(self._modules) do e[2]:train(mode) end
  return self
end
function Module:eval() return self:train(false) end

--- Zero every parameter gradient that exists.
function Module:zero_grad()
  for _, e in ipairs(self:parameters_and_names()) do
    if e[2].grad then e[2].grad:zero_() end
  end
  return self
end

--- Set requires_grad=false on parameters whose name starts with `pat` or matches the
-- Lua pattern `pat` (a function(name) → bool works too). Returns self.
function Module:freeze(pat, flag)
  local rg = flag and true or false
  for _, e in ipairs(self:parameters_and_names()) do
    local n = e[1]
    local hit
    if type(pat) == "function" then hit = pat(n)
    elseif pat == nil then hit = true
    else hit = n:sub(1, #pat) == pat or n:match(pat) ~= nil end
    if hit then e[2].requires_grad = rg; if not rg then e[2].grad = nil end end
  end
  return self
end
function Module:unfreeze(pat) return self:freeze(pat, true) end

--- Replace the child at a dotted path ("end_point", "layer4.2.conv3") with a new module;
-- parameter names are re-derived. Returns the new module.
function Module:replace(path, new)
  if type(path) ~= "string" or path == "" then
    error("replace: path must be a dotted module path (a string), got " .. type(path), 2)
  end
  if type(new) ~= "table" or type(new.forward) ~= "function" then
    error("replace: new must be a module, got " .. type(new), 2)
  end
  local parent, last = self, nil
  local parts = {}
  for p in tostring(path):gmatch("[^%.]+") do parts[#parts + 1] = p end
  for i = 1, #parts - 1 do
    parent = parent[parts[i]]
    if type(parent) ~= "table" or not parent._modules then error("replace: no module at '" .. path .. "'", 2) end
  end
  last = parts[#parts]
  local found = false
  for _, e in ipairs(parent._modules) do if e[1] == last then found = true end end
  if not found then error("replace: no child '" .. last .. "' in '" .. path .. "'", 2) end
  parent:register_module(last, new)
  new:train(self.training)
  self:parameters_and_names()
  return new
end

-- the first parameter's tensor, depth first (no name building: cheap enough per call)
function first_param(m)
  for _, e in ipairs(m._params) do if e[2].data then return e[2].data end end
  for _, e in ipairs(m._modules) do
    local t = first_param(e[2])
    if t then return t end
  end
  return nil
end

--- The device name of the module: its first parameter's, else where it was built or last moved.
function Module:device()
  local t = first_param(self)
  if t then return t:device() end
  return rawget(self, "_device") or D.get()
end

local function move_module(m, dev, seen)
  for _, e in ipairs(m._params) do
    local p = e[2]
    if not seen[p] then
      seen[p] = true
      if p.data and p.data:device() ~= dev then p.data = p.data:to(dev) end
      if p.grad and p.grad:device() ~= dev then p.grad = p.grad:to(dev) end
    end
  end
  local bufs = rawget(m, "_buffers")
  if bufs then
    for key in pairs(bufs) do
      local t = rawget(m, key)
      if T.is_tensor(t) and t:device() ~= dev then rawset(m, key, t:to(dev)) end
    end
  end
  m._device = dev
  for _, e in ipairs(m._modules) do move_module(e[2], dev, seen) end
end

--- to(device) ("cpu", "sim", "cuda:0"): moves every parameter (and its gradient) and every
-- buffer to the device, in place: param.data is replaced by the moved tensor, the Parameter
-- objects stay the same (optimizers and names keep working). Returns self.
function Module:to(device)
  if device == nil then device = "cpu" end
  D.check(device, 2, "Module:to")
  move_module(self, device, {})
  return self
end

--- The gradient tensor of a parameter (allocated on first use), nil when frozen.
function Module:grad_of(p)
  if not p or not p.requires_grad then return nil end
  local g = p.grad
  if g == nil or not M.same_shape(g, p.data) or g:device() ~= p.data:device() then
    g = T.empty(p.data:shape(), p.data:dtype(), p.data:device()):zero_()
    p.grad = g
  end
  return g
end

function M.same_shape(t, shape)
  if type(shape) == "table" and getmetatable(shape) == T.Tensor then shape = shape:shape() end
  if t.has_shape then return t:has_shape(shape) end
  local s = t:shape()
  if #s ~= #shape then return false end
  for i = 1, #s do if s[i] ~= shape[i] then return false end end
  return true
end

--- true when t is channels-last and not also contiguous (T.empty_channels_last): the layout
-- a stock module's outputs and gradients follow (spore.nn.chain)
function M.channels_last(t) return not t:is_contiguous() and t:is_channels_last() end

--- A buffer self[key] of the given shape and dtype (default float32) on device (default
-- "cpu"; layers pass their input's device). A new shape resizes it in place within its capacity (a short last
-- batch does not reallocate); a new dtype or device reallocates. channels_last (true: a
-- 4-D buffer laid out NHWC, T.empty_channels_last, for spore.nn.chain's runs under oneDNN)
-- reallocates when the layout or the shape changes.
function Module:buffer(key, shape, dtype, device, channels_last)
  local t = rawget(self, key)
  device = device or "cpu"
  if t and t:dtype() == (dtype or "float32") and t:device() == device then
    if channels_last then
      if t:is_channels_last() and M.same_shape(t, shape) then return t end
    elseif t:is_contiguous() then
      if M.same_shape(t, shape) then return t end
      -- a short last batch (or the next full one): in place within the storage's capacity,
      -- unless a view of the old buffer is still alive
      if t:try_resize_(shape) then return t end
    end
  end
  t = channels_last and T.empty_channels_last(shape, dtype, device) or T.empty(shape, dtype, device)
  rawset(self, key, t)
  local bufs = rawget(self, "_buffers")
  if not bufs then bufs = {}; rawset(self, "_buffers", bufs) end
  bufs[key] = true
  return t
end

return M
