--- spore.optim.Flat — flat training state (DESIGN.md): the parameters of one bucket (one
-- optimizer group, one device, one dtype, one weight-decay value) live in ONE contiguous
-- buffer, their gradients in a second, and each optimizer slot (moments, accum, ...) in one
-- more. p.data, p.grad and the slot Parameters' data are views (narrow + reshape) into
-- those buffers, so an update is one engine call over the whole bucket.
--
-- Nothing here reads tensor memory: values move with copy_ (which works across devices).
-- Views are recognised by identity: when something replaced p.data, p.grad or a slot's data
-- with another tensor (a layer allocating a first gradient, a test assigning p.grad,
-- Module:to moving a net), sync() copies it back into the buffer and restores the view;
-- when every parameter of the bucket moved to another device, the bucket is rebuilt there,
-- slots included.
--
-- Two optimizers over the same parameters in the same layout share the parameter and
-- gradient buffers (found through a weak registry keyed by the view tensors); in another
-- layout each sync() moves the values into its own buffers, which stays correct.
local T = require("spore.tensor")
local class = require("spore.class")

local Flat = class("Flat")

-- view tensor (a p.data of some store) → its store; weak both ways, so that the registry
-- keeps neither alive (the store's index_of gives the view's position)
local home = setmetatable({}, { __mode = "kv" })

-- every slice starts on a multiple of ALIGN elements (64 bytes of float32), as a tensor
-- of its own would: the kernels (GEMM) read aligned rows. The padding belongs to no
-- parameter: it starts at zero (stat: its fill value) and the elementwise updates that run
-- over it never mix it into a parameter's elements.
local ALIGN = 16

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
local function shape_str(s) return "[" .. table.concat(s, ", ") .. "]" end

--- Flat.new(params, info) → bucket. params: array of Parameters (numel > 0), all on
-- info.device with dtype info.dtype; info.name names the bucket in messages; info.decay is
-- the weight decay of every parameter in it. Copies each p.data (and p.grad when set) into
-- the buffers and replaces them with views.
function Flat.new(params, info)
  local self = setmetatable({ params = params, name = info.name, decay = info.decay, device = info.device,
    dtype = info.dtype, slots = {}, slot_names = {}, ranges = {} }, Flat)
  self.shapes, self.offsets, self.numels = {}, {}, {}
  local n = 0
  for i, p in ipairs(params) do
    self.shapes[i], self.offsets[i], self.numels[i] = p.data:shape(), n, p.data:numel()
    n = n + self.numels[i]
    n = math.ceil(n / ALIGN) * ALIGN
  end
  self.total = n
  self:_adopt()
  return self
end

-- a store whose views are exactly self.params' data, in order, on this device and dtype
function Flat:_reusable_store()
  local st = home[self.params[1].data]
  if not st then return nil end
  if #st.pviews ~= #self.params or st.device ~= self.device or st.dtype ~= self.dtype then return nil end
  for i, p in ipairs(self.params) do
    if home[p.data] ~= st or st.index_of[p.data] ~= i then return nil end
  end
  return st
end

-- (re)attach self.params to a parameter/gradient store on self.device
function Flat:_adopt()
  local st = self:_reusable_store()
  if not st then
    st = { device = self.device, dtype = self.dtype, pviews = {}, gviews = {}, index_of = {} }
    st.pbuf = T.empty({ self.total }, self.dtype, self.device):zero_()
    st.gbuf = T.empty({ self.total }, self.dtype, self.device):zero_()
    for i = 1, #self.params do
      local off, n, shape = self.offsets[i], self.numels[i], self.shapes[i]
      st.pviews[i] = st.pbuf:narrow(1, off + 1, n):reshape(shape)
      st.gviews[i] = st.gbuf:narrow(1, off + 1, n):reshape(shape)
      home[st.pviews[i]] = st
      st.index_of[st.pviews[i]] = i
    end
  end
  self.store, self.pbuf, self.gbuf = st, st.pbuf, st.gbuf
  for i, p in ipairs(self.params) do
    local pv, gv = st.pviews[i], st.gviews[i]
    if not rawequal(p.data, pv) then pv:copy_(p.data); p.data = pv end
    if p.grad ~= nil and not rawequal(p.grad, gv) then gv:copy_(p.grad); p.grad = gv end
  end
  self.ranges = {}
end

--- Add a slot buffer `name` (float32, filled with init) and return its per-parameter views
-- (array, in self.params order).
-- the slot coverage of parameters lo..hi: base (first element) and len (elements, aligned);
-- lo > hi: none
function Flat:_cover(lo, hi)
  local n = #self.params
  lo, hi = math.max(lo, 1), math.min(hi, n)
  if lo > hi then return n + 1, n, 0, 0 end
  local base = self.offsets[lo]
  return lo, hi, base, math.min(self.total, math.ceil((self.offsets[hi] + self.numels[hi]) / ALIGN) * ALIGN) - base
end

--- Hold the slots of parameters lo..hi only, from the first add_slot on (optimizer-state
-- sharding planned before the slots exist: spore.dist.shard.plan). Call before add_slot.
function Flat:plan_slots(lo, hi)
  if #self.slot_names > 0 then error("flat state: plan_slots after the slots of " .. self.name .. " exist", 2) end
  self.keep_lo, self.keep_hi = lo, hi
end

--- Add a slot buffer `name` (float32, filled with init) and return its per-parameter views
-- (array, in self.params order; nil for a parameter whose slots this process does not hold:
-- see plan_slots).
function Flat:add_slot(name, init)
  if self.slots[name] then error("flat state: slot '" .. name .. "' already exists in " .. self.name, 2) end
  local lo, hi, base, len = self:_cover(self.keep_lo or 1, self.keep_hi or #self.params)
  local buf = len > 0 and T.empty({ len }, "float32", self.device):fill_(init or 0) or nil
  local views = {}
  for i = lo, hi do views[i] = buf:narrow(1, self.offsets[i] - base + 1, self.numels[i]):reshape(self.shapes[i]) end
  -- base/len: the part of the bucket the buffer covers (all of it unless sharded: plan_slots,
  -- keep_slots); lo..hi: the parameters whose state it holds; state: every parameter's state
  -- Parameter (own_slot), owners: those this buffer holds (restored by sync)
  self.slots[name] = { buf = buf, views = views, owners = {}, state = {}, base = base, len = len, lo = lo, hi = hi }
  self.slot_names[#self.slot_names + 1] = name
  self.ranges = {}
  return views
end

--- Record the state Parameter whose data is slot `name`'s view of parameter i, so that
-- sync() can restore the view if something replaces its data.
function Flat:own_slot(name, i, param)
  local s = self.slots[name]
  s.state[i] = param
  if i >= s.lo and i <= s.hi then s.owners[i] = param end
  if self.keep_lo then self.slots_whole = (s.lo == 1 and s.hi == #self.params) end
end

local function check_shape(what, name, t, shape)
  if not same_shape(t:shape(), shape) then
    error(("optimizer: %s of '%s' changed shape from %s to %s after the optimizer was made; make a new optimizer")
      :format(what, name, shape_str(shape), shape_str(t:shape())), 0)
  end
end

-- every parameter left its view for tensors on one other device: move the bucket there
function Flat:_moved_device()
  local dev
  for i, p in ipairs(self.params) do
    if rawequal(p.data, self.store.pviews[i]) then return nil end
    local d = p.data:device()
    if dev and d ~= dev then return nil end
    dev = d
  end
  if dev == self.device then return nil end
  return dev
end

function Flat:_rebuild_on(dev)
  self.device = dev
  self:_adopt()
  for _, name in ipairs(self.slot_names) do
    local s = self.slots[name]
    local old = s.views
    local buf = s.len > 0 and T.empty({ s.len }, "float32", dev):zero_() or nil
    s.buf, s.views, s.lin = buf, {}, nil
    for i = s.lo, s.hi do
      s.views[i] = buf:narrow(1, self.offsets[i] - s.base + 1, self.numels[i]):reshape(self.shapes[i])
      local owner = s.owners[i]
      local src = (owner and not rawequal(owner.data, old[i])) and owner.data or old[i]
      s.views[i]:copy_(src)
      if owner then owner.data = s.views[i] end
    end
  end
end

--- Restore the views: a replaced p.data / p.grad / slot data is copied into the buffer and
-- replaced by its view again (cheap when nothing changed: one identity test per tensor).
-- Errors when a parameter changed shape or dtype, or when the bucket's parameters no
-- longer share one device.
function Flat:sync()
  local st = self.store
  local pviews, gviews = st.pviews, st.gviews
  for i, p in ipairs(self.params) do
    local d = p.data
    if not rawequal(d, pviews[i]) then
      check_shape("parameter", p.name, d, self.shapes[i])
      if d:dtype() ~= self.dtype then
        error(("optimizer: parameter '%s' changed dtype from %s to %s after the optimizer was made")
          :format(p.name, self.dtype, d:dtype()), 0)
      end
      if d:device() ~= self.device then
        local dev = self:_moved_device()
        if not dev then
          error(("optimizer: the parameters of %s must share one device: '%s' is on %s, '%s' on %s")
            :format(self.name, p.name, d:device(), self.params[1].name, self.params[1].data:device()), 0)
        end
        self:_rebuild_on(dev)
        return self:sync()
      end
      -- replaced (or moved into another optimizer's buffer): the value in p.data is the truth
      pviews[i]:copy_(d); p.data = pviews[i]
    end
    local g = p.grad
    if g ~= nil and not rawequal(g, gviews[i]) then
      check_shape("gradient", p.name, g, self.shapes[i])
      gviews[i]:copy_(g); p.grad = gviews[i]
    end
  end
  for _, name in ipairs(self.slot_names) do
    local s = self.slots[name]
    for i, owner in pairs(s.owners) do
      if not rawequal(owner.data, s.views[i]) then
        check_shape("optimizer state", owner.name, owner.data, self.shapes[i])
        s.views[i]:copy_(owner.data); owner.data = s.views[i]
      end
    end
  end
end

--- Runs of consecutive parameters to update: an array of {i, j} (1-based, inclusive) over
-- the parameters that are trainable and have a gradient. Call after sync().
function Flat:active_runs()
  local runs, start = {}, nil
  local params = self.params
  for i = 1, #params do
    local p = params[i]
    local on = p.requires_grad and p.grad ~= nil
    if on and not start then start = i end
    if not on and start then runs[#runs + 1] = { start, i - 1 }; start = nil end
  end
  if start then runs[#runs + 1] = { start, #params } end
  return runs
end

--- Tensors of parameters i..j: { param=, grad=, <slot name>= } — the buffers themselves for
-- the whole bucket, else 1-D views (cached).
function Flat:range(i, j)
  if i == 1 and j == #self.params and self.slots_whole ~= false then
    local r = self.ranges.all
    if not r then
      r = { param = self.pbuf, grad = self.gbuf }
      for name, s in pairs(self.slots) do r[name] = s.buf end
      self.ranges.all = r
    end
    return r
  end
  local key = i .. ":" .. j
  local r = self.ranges[key]
  if not r then
    local off = self.offsets[i]
    local n = self.offsets[j] + self.numels[j] - off
    r = { param = self.pbuf:narrow(1, off + 1, n), grad = self.gbuf:narrow(1, off + 1, n) }
    for name, s in pairs(self.slots) do
      if i < s.lo or j > s.hi then
        local far = (i < s.lo) and i or j
        error(("optimizer: the %s state of '%s' is not held by this process (optimizer-state sharding keeps "
          .. "parameters %d..%d of %s here)"):format(name, self.params[far].name, s.lo, s.hi, self.name), 0)
      end
      r[name] = s.buf:narrow(1, off - s.base + 1, n)
    end
    self.ranges[key] = r
  end
  return r
end

--- First value of slot `name` for parameter i (an engine read of one element).
function Flat:slot_first(name, i)
  local s = self.slots[name]
  s.lin = s.lin or {}
  local v = s.lin[i]
  if not v then
    if i < s.lo or i > s.hi then
      error(("optimizer: the %s state of '%s' is not held by this process (optimizer-state sharding)")
        :format(name, self.params[i].name), 0)
    end
    v = s.buf:narrow(1, self.offsets[i] - s.base + 1, self.numels[i]); s.lin[i] = v
  end
  return v:get(1)
end

--- Optimizer-state sharding (spore.dist.shard): keep the slot values of parameters lo..hi
-- only (none when lo > hi). Every slot buffer is replaced by one that covers just those
-- parameters (their values copied), so the rest of the state is freed; the state Parameters
-- of the other parameters get an empty float32 tensor (0 elements) and leave sync(). Once
-- per bucket. Returns the slot bytes kept (all slots).
function Flat:keep_slots(lo, hi)
  if self.slots_whole == false then error("flat state: the slots of " .. self.name .. " are already sharded", 2) end
  local n = #self.params
  local base, len
  lo, hi, base, len = self:_cover(lo, hi)
  local kept = 0
  for _, name in ipairs(self.slot_names) do
    local s = self.slots[name]
    local buf = len > 0 and T.empty({ len }, "float32", self.device) or nil
    if buf then buf:copy_(s.buf:narrow(1, base + 1, len)) end
    local views, owners = {}, {}
    for i = 1, n do
      local owner = s.owners[i]
      if i >= lo and i <= hi then
        views[i] = buf:narrow(1, self.offsets[i] - base + 1, self.numels[i]):reshape(self.shapes[i])
        if owner then
          -- a replaced slot tensor is the truth (as in sync)
          if not rawequal(owner.data, s.views[i]) then views[i]:copy_(owner.data) end
          owner.data, owners[i] = views[i], owner
        end
      elseif owner then
        owner.data = T.empty({ 0 }, "float32", self.device)
      end
    end
    s.buf, s.views, s.owners, s.lin, s.base, s.len, s.lo, s.hi = buf, views, owners, nil, base, len, lo, hi
    kept = kept + len * 4
  end
  self.slots_whole = (lo == 1 and hi == n)
  self.ranges = {}
  return kept
end

--- Bytes of the slot buffers this bucket holds (the optimizer's per-parameter state).
function Flat:slot_bytes()
  local b = 0
  for _, name in ipairs(self.slot_names) do b = b + self.slots[name].len * 4 end
  return b
end

--- Zero the gradient buffer (after sync(), every gradient that exists is a view into it).
function Flat:zero_grad()
  self:sync()
  self.gbuf:zero_()
end

return Flat
