--- spore.nn.chain — the one sequential runner: run an ordered list of modules forward
-- (remembering each module's input) and backward in reverse. SequentialCell runs its
-- children with it; models whose registered children (which define parameter names)
-- differ from the execution order, e.g. LeNet5 reusing ReLU/MaxPool, run their own list.
-- Backward stops where nothing upstream needs a gradient: below the first (in execution
-- order) module holding a trainable parameter, no module runs backward at all, and that
-- module computes no input gradient (unless the caller asked for one).
--
-- Inference fusion: a Conv2d followed by a BatchNorm2d that uses its moving statistics
-- (eval mode), and by a ReLU when one comes next, runs as one kernel (K.conv2d_bn_forward)
-- writing the last module's output buffer; the skipped inputs are marked FUSED in ins. A
-- backward through such a run first recomputes the conv and BatchNorm outputs it needs
-- (materialize), and marks ins.nofuse, so that a net trained in eval mode (frozen BN)
-- pays that once and then runs unfused. Only the stock classes fuse: a subclass or an
-- instance with its own forward (e.g. spore.dist's sync BN) runs as written.
-- SPORE_NO_FUSE=1 turns fusion off (for comparisons).
local K = require("ffi.nn")
local M = {}
local FUSED = setmetatable({}, { __tostring = function() return "<fused>" end })
M.FUSED = FUSED
local NOFUSE = os.getenv("SPORE_NO_FUSE") == "1"
local Conv, BN, ReLU
local fusable_dev = {}

local function stock(m, cls) return getmetatable(m) == cls and rawget(m, "forward") == nil end

--- true when list[i], list[i+1] are a stock Conv2d (float32) and an eval-mode BatchNorm2d
-- of its width, on a device with the fused kernel
local function conv_bn_at(list, i, x)
  if not Conv then
    Conv, BN, ReLU = require("spore.nn.conv"), require("spore.nn.batchnorm"), require("spore.nn.relu")
  end
  local c, b = list[i], list[i + 1]
  if not (b and stock(c, Conv) and stock(b, BN)) then return false end
  if c._bf16 or b:_batch_stats() or b.num_features ~= c.out_channels then return false end
  local d = x:device()
  local f = fusable_dev[d]
  if f == nil then f = K.conv2d_bn_fusable(x); fusable_dev[d] = f end
  return f
end

local function is_relu(m) return m ~= nil and stock(m, ReLU) end

--- forward through list; remembers each module's input in ins. tail (optional, for a
-- residual join): {residual, owner}: when the list ends in a fusable conv + BN, they run
-- with + residual and ReLU into owner's "output" buffer and forward returns (out, true);
-- otherwise (x, false) and the caller joins.
function M.forward(list, ins, x, tail)
  local n = #list
  local fuse = not NOFUSE and not ins.nofuse and type(x) == "table" and x.shape ~= nil
  local i = 1
  while i <= n do
    local m = list[i]
    if fuse and i < n and conv_bn_at(list, i, x) then
      ins[i] = x
      if tail and i + 1 == n then
        x = m:_forward_bn(x, list[i + 1], tail[1], true, tail[2])
        ins[i + 1] = FUSED
        return x, true
      end
      local r = list[i + 2]
      if is_relu(r) then
        x = m:_forward_bn(x, list[i + 1], nil, true, r)
        ins[i + 1], ins[i + 2] = FUSED, FUSED
        i = i + 3
      else
        x = m:_forward_bn(x, list[i + 1], nil, false, list[i + 1])
        ins[i + 1] = FUSED
        i = i + 2
      end
    else
      ins[i] = x
      x = m:forward(x)
      i = i + 1
    end
  end
  return x, false
end

-- the conv and BatchNorm outputs of the fused run holding position i (a backward needs
-- them): rerun the conv, then the BatchNorm (which also fills its saved statistics)
local function materialize(list, ins, i)
  local j = i
  while ins[j] == FUSED do j = j - 1 end
  local y = list[j]:forward(ins[j])
  ins[j + 1] = y
  if ins[j + 2] == FUSED and j + 2 <= i then ins[j + 2] = list[j + 1]:forward(y) else list[j + 1]:forward(y) end
  ins.nofuse = true
end

--- true when module m (or a descendant) has a Parameter with requires_grad. Walks the
-- module tree without building tables (called on every backward).
local function trainable(m)
  for _, e in ipairs(m._params) do if e[2].requires_grad then return true end end
  for _, e in ipairs(m._modules) do if trainable(e[2]) then return true end end
  return false
end
M.trainable = trainable

--- backward through list in reverse. need_input_grad == false: the caller needs no
-- gradient for the list's input, so the backward stops at the first module with a
-- trainable parameter (returns nil then); otherwise every module runs and the input
-- gradient is returned. M.on_backward (nil unless spore.dist is reducing gradients) is
-- called with each module once its backward has returned: its parameters' gradients are final.
function M.backward(list, ins, g, need_input_grad)
  local first = 1
  if need_input_grad == false then
    first = nil
    for i = 1, #list do
      local m = list[i]
      if not m._params or trainable(m) then first = i; break end
    end
    if not first then return nil end
  end
  for i = #list, first, -1 do
    if ins[i] == FUSED then materialize(list, ins, i) end
    g = list[i]:backward(ins[i], g, i > first or need_input_grad ~= false)
    local hook = M.on_backward
    if hook then hook(list[i]) end
  end
  if need_input_grad == false then return nil end
  return g
end
return M
