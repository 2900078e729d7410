--- spore.train loss scale — MindSpore's FixedLossScaleManager and DynamicLossScaleManager, and
-- the training step Model runs with them (MindSpore's TrainOneStepCell(sens = scale) and
-- TrainOneStepWithLossScaleCell):
--   spore.FixedLossScaleManager(1024, {drop_overflow_update = false})   -- also (1024, false)
--   spore.DynamicLossScaleManager(2^24, 2, 2000)  -- init_loss_scale, scale_factor, scale_window
--   spore.Model(net, loss, spore.optim.Momentum(params, lr, 0.9, {loss_scale = 1024}),
--               {loss_scale_manager = spore.FixedLossScaleManager(1024, {drop_overflow_update = false})})
-- What a step does, as in MindSpore:
-- * FixedLossScaleManager(s, drop_overflow_update = false) (no update cell): the loss gradient
--   is scaled by s (TrainOneStepCell's sens), the network gradients come out s times larger and
--   go to the optimizer as they are; the optimizer divides them by its own loss_scale (set it
--   to s, as the zoo's recipe does). No overflow check: every step updates.
-- * FixedLossScaleManager(s) (drop_overflow_update = true) and DynamicLossScaleManager: the
--   gradients are scaled by the current scale, then multiplied by its float32 reciprocal
--   (unscaled), then checked: an Inf or NaN in any gradient is an overflow, and the optimizer
--   step is skipped (weights, moments and global_step stay). The update cell then runs:
--   fixed — nothing; dynamic — MindSpore's DynamicLossScaleUpdateCell: on overflow
--   scale = max(scale / factor, 1); after scale_window steps without overflow, scale *= factor.
--   The optimizer still divides by its own loss_scale (leave it at 1 with these managers).
-- MindSpore refuses the managers with an update cell on CPU (its overflow status ops are
-- Ascend/GPU only); spore runs them on every device, with the GPU semantics (FloatStatus:
-- any Inf/NaN in a gradient).
local class = require("spore.class")
local opts_check = require("spore.opts").check
local f32 = require("spore.nn.learning_rate_schedule").f32

local M = {}

---------------------------------------------------------------- FixedLossScaleManager
local Fixed = class("FixedLossScaleManager")
M.FixedLossScaleManager = Fixed

--- FixedLossScaleManager(loss_scale=128, drop_overflow_update=true), the second argument also
-- as {drop_overflow_update=}, or FixedLossScaleManager{loss_scale=, drop_overflow_update=}.
function Fixed.new(loss_scale, drop)
  if type(loss_scale) == "table" then
    local o = opts_check("FixedLossScaleManager", loss_scale, { "loss_scale", "drop_overflow_update" }, nil,
      { loss_scale = "number", drop_overflow_update = "boolean" }, 3)
    loss_scale, drop = o.loss_scale, o.drop_overflow_update
  elseif type(drop) == "table" then
    drop = opts_check("FixedLossScaleManager", drop, { "drop_overflow_update" }, nil,
      { drop_overflow_update = "boolean" }, 3).drop_overflow_update
  end
  if loss_scale == nil then loss_scale = 128.0 end
  if drop == nil then drop = true end
  if type(loss_scale) ~= "number" then error("FixedLossScaleManager: loss_scale must be a number, got " .. type(loss_scale), 2) end
  if not (loss_scale >= 1) then
    error("FixedLossScaleManager: the argument 'loss_scale' must be >= 1, but got " .. tostring(loss_scale), 2)
  end
  if type(drop) ~= "boolean" then error("FixedLossScaleManager: drop_overflow_update must be a boolean, got " .. type(drop), 2) end
  return setmetatable({ _loss_scale = loss_scale, _drop_overflow_update = drop }, Fixed)
end
function Fixed:__tostring()
  return ("FixedLossScaleManager(%g, drop_overflow_update=%s)"):format(self._loss_scale, tostring(self._drop_overflow_update))
end
function Fixed:get_loss_scale() return self._loss_scale end
function Fixed:get_drop_overflow_update() return self._drop_overflow_update end
--- The fixed manager ignores overflows (MindSpore: does nothing).
function Fixed:update_loss_scale(_) end
--- nil without drop_overflow_update (Model then scales the loss gradient only), else the
-- fixed update cell (Model checks overflow and skips such steps).
function Fixed:get_update_cell()
  if not self._drop_overflow_update then return nil end
  return M.FixedLossScaleUpdateCell(self._loss_scale)
end

---------------------------------------------------------------- DynamicLossScaleManager
local Dynamic = class("DynamicLossScaleManager")
M.DynamicLossScaleManager = Dynamic

--- DynamicLossScaleManager(init_loss_scale=2^24, scale_factor=2, scale_window=2000), or with
-- {init_loss_scale=, scale_factor=, scale_window=}.
function Dynamic.new(init_loss_scale, scale_factor, scale_window)
  if type(init_loss_scale) == "table" then
    local o = opts_check("DynamicLossScaleManager", init_loss_scale, { "init_loss_scale", "scale_factor", "scale_window" },
      nil, { init_loss_scale = "number", scale_factor = "number", scale_window = "number" }, 3)
    init_loss_scale, scale_factor, scale_window = o.init_loss_scale, o.scale_factor, o.scale_window
  end
  init_loss_scale, scale_factor, scale_window = init_loss_scale or 2 ^ 24, scale_factor or 2, scale_window or 2000
  if type(init_loss_scale) ~= "number" or not (init_loss_scale >= 1) then
    error("DynamicLossScaleManager: the argument 'init_loss_scale' must be > 1, but got " .. tostring(init_loss_scale), 2)
  end
  if type(scale_window) ~= "number" or scale_window ~= math.floor(scale_window) or scale_window <= 0 then
    error("DynamicLossScaleManager: scale_window must be a positive integer, got " .. tostring(scale_window), 2)
  end
  if type(scale_factor) ~= "number" or not (scale_factor > 0) then
    error("DynamicLossScaleManager: the argument 'scale_factor' must be > 0, but got " .. tostring(scale_factor), 2)
  end
  return setmetatable({ loss_scale = init_loss_scale, scale_factor = scale_factor, scale_window = scale_window,
    increase_ratio = scale_factor, decrease_ratio = 1 / scale_factor, cur_iter = 1, last_overflow_iter = 0,
    bad_step_max = 1000, bad_step = 0 }, Dynamic)
end
function Dynamic:__tostring()
  return ("DynamicLossScaleManager(%g, %g, %d)"):format(self.loss_scale, self.scale_factor, self.scale_window)
end
function Dynamic:get_loss_scale() return self.loss_scale end
function Dynamic:get_drop_overflow_update() return true end
--- MindSpore's host-side update (the manager's own method; training uses the update cell):
-- overflow → scale = max(scale / factor, 1); else every scale_window-th step since the last
-- overflow → scale *= factor; more than 1000 overflows in a row is an error.
function Dynamic:update_loss_scale(overflow)
  if overflow then
    self.loss_scale = math.max(self.loss_scale * self.decrease_ratio, 1)
    self.last_overflow_iter = self.cur_iter
    self.bad_step = self.bad_step + 1
  else
    if (self.cur_iter - self.last_overflow_iter) % self.scale_window == 0 then
      self.loss_scale = self.loss_scale * self.increase_ratio
    end
    self.bad_step = 0
  end
  if self.bad_step > self.bad_step_max then
    error(("Dynamic loss scale Continuous overflow %d times, has exceeded maximum threshold."):format(self.bad_step), 2)
  end
  self.cur_iter = self.cur_iter + 1
end
--- A fresh DynamicLossScaleUpdateCell(loss_scale, scale_factor, scale_window).
function Dynamic:get_update_cell()
  return M.DynamicLossScaleUpdateCell(self.loss_scale, self.scale_factor, self.scale_window)
end

---------------------------------------------------------------- update cells
-- cell:update(scale, overflow) → the new scale (float32 values, as MindSpore's Tensors)
local FixedCell = class("FixedLossScaleUpdateCell")
M.FixedLossScaleUpdateCell = FixedCell
function FixedCell.new(v) return setmetatable({ loss_scale_value = v }, FixedCell) end
function FixedCell:get_loss_scale() return self.loss_scale_value end
function FixedCell:update(scale, _) return scale end

local DynCell = class("DynamicLossScaleUpdateCell")
M.DynamicLossScaleUpdateCell = DynCell
function DynCell.new(v, factor, window)
  return setmetatable({ loss_scale_value = v, scale_factor = f32(factor), scale_window = window,
    cur_iter = 1, last_overflow_iter = 0 }, DynCell)
end
function DynCell:get_loss_scale() return self.loss_scale_value end
function DynCell:update(scale, overflow)
  local on_overflow = scale
  if overflow then on_overflow = math.max(f32(scale * f32(1 / self.scale_factor)), 1) end
  local should_inc = self.scale_window <= self.cur_iter - self.last_overflow_iter
  if overflow or should_inc then self.last_overflow_iter = self.cur_iter end
  local new = on_overflow
  if should_inc and not overflow then new = f32(on_overflow * self.scale_factor) end
  self.cur_iter = self.cur_iter + 1
  return new
end

--- is_manager(x) → true for the two managers above.
function M.is_manager(x)
  local mt = type(x) == "table" and getmetatable(x)
  return mt == Fixed or mt == Dynamic
end

---------------------------------------------------------------- the training step
-- every gradient the optimizer will read: one flat buffer per bucket, or per parameter
local function gradients(opt, net)
  local r = {}
  local bks = rawget(opt, "buckets")
  if type(bks) == "table" and #bks > 0 then
    -- sync: gradients the net allocated itself are copied into the flat buffer (as step does)
    for _, b in ipairs(bks) do b:sync(); r[#r + 1] = b.gbuf end
    for _, p in ipairs(rawget(opt, "params") or {}) do
      if p.grad and not (opt._where and opt._where[p]) then r[#r + 1] = p.grad end
    end
    return r
  end
  local ps = rawget(opt, "params")
  if type(ps) ~= "table" and type(net.trainable_params) == "function" then ps = net:trainable_params() end
  for _, p in ipairs(ps or {}) do if p.grad then r[#r + 1] = p.grad end end
  return r
end

local function nonfinite(v) return v ~= v or v == math.huge or v == -math.huge end

--- M.backward_and_step(model, net, loss, opt, x, ctx) → true when the optimizer stepped.
-- The backward and the optimizer step of one training step (Model:train calls it after the
-- forward and the loss): plain (no manager), TrainOneStepCell(sens = scale) for a fixed
-- manager without drop_overflow_update, TrainOneStepWithLossScaleCell otherwise. Sets
-- ctx.loss_scale (the scale this step used), ctx.overflow and ctx.next_loss_scale (with an
-- update cell: the scale of the next step). The scale lives with the Model (model._ls_state),
-- created at its first training step from the manager.
function M.backward_and_step(model, net, loss, opt, x, ctx)
  local mgr = model.loss_scale_manager
  if not mgr then
    net:backward(x, loss:backward(), false)
    opt:step()
    return true
  end
  if not model._ls_state then
    local cell = mgr:get_update_cell()
    model._ls_state = { cell = cell, scale = f32(mgr:get_loss_scale()) }
  end
  local st = model._ls_state
  local scale = st.scale
  ctx.loss_scale, ctx.next_loss_scale = scale, scale
  -- d(loss * scale): the loss gradient scaled by the scale (MindSpore's sens)
  net:backward(x, loss:backward(scale), false)
  if not st.cell then
    ctx.overflow = false
    opt:step()
    return true
  end
  -- unscale (times the float32 reciprocal), then any Inf/NaN in a gradient is an overflow
  local inv = f32(1 / scale)
  local overflow = false
  for _, g in ipairs(gradients(opt, net)) do
    if g:numel() > 0 then
      g:mul_(inv)
      if nonfinite(g:sum()) then overflow = true end
    end
  end
  -- the cell keeps the scale (MindSpore's scale_sense); the manager keeps its initial value,
  -- as MindSpore's does
  st.scale = st.cell:update(scale, overflow)
  ctx.next_loss_scale = st.scale
  ctx.overflow = overflow
  if overflow then return false end
  opt:step()
  return true
end

return M
