--- spore.nn.chain — the one sequential runner: run an ordered list of modules forward
-- (remembering each module's input) and backward in reverse. SequentialCell runs its
-- children with it; models whose registered children (which define parameter names)
-- differ from the execution order, e.g. LeNet5 reusing ReLU/MaxPool, run their own list.
-- Backward stops where nothing upstream needs a gradient: below the first (in execution
-- order) module holding a trainable parameter, no module runs backward at all, and that
-- module computes no input gradient (unless the caller asked for one).
--
-- Fusion. Inference: a Conv2d followed by a BatchNorm2d that uses its moving statistics
-- (eval mode), and by a ReLU when one comes next, runs as one kernel (K.conv2d_bn_forward)
-- writing the last module's output buffer; the skipped inputs are marked FUSED in ins. A
-- backward through such a run first recomputes the conv and BatchNorm outputs it needs
-- (materialize), and marks ins.nofuse, so that a net trained in eval mode (frozen BN)
-- pays that once and then runs unfused. Only the stock classes fuse: a subclass or an
-- instance with its own forward (e.g. spore.dist's sync BN) runs as written.
-- Training (and wherever the conv fusion does not apply): a BatchNorm2d followed by a ReLU
-- runs as one kernel forward (K.batchnorm_act_forward, into the ReLU's output buffer; the
-- ReLU's input is marked BNRELU) and one backward (K.batchnorm_relu_backward: the ReLU's
-- gradient mask applied inside BatchNorm's); a residual block's last BatchNorm takes the
-- join (+ identity, ReLU) into its pass. Both equal the unfused ops bit for bit.
-- SPORE_NO_FUSE=1 turns fusion off (for comparisons; 0 or unset: on; any other value is an error).
--
-- Channels-last (NHWC) activations. With conv_kernel "auto" (the default) or "onednn" in a
-- libspore with oneDNN, on the cpu (or sim, which runs its kernels), a Conv2d's output (a
-- fused eval run's or a plain forward's) is channels-last when oneDNN runs that layer in
-- place (not a LeNet-sized one; not an O2 conv in training) and what reads it next takes that
-- layout: a stock Conv2d, BatchNorm2d, ReLU, MaxPool2d or GlobalAvgPool, a ResidualBlock, or a
-- SequentialCell starting with one; at the end of the list, when the caller passed cl_out.
-- BatchNorm, ReLU and the pools follow their input's layout, gradients their tensor's. oneDNN
-- then runs each convolution (forward and both gradients) as an NHWC primitive and no
-- activation is reordered between layers (ResNet50: from the stem to the global mean). A
-- module outside that set gets an NCHW copy, and so does the caller of a chain run without
-- cl_out (net(x) and block(x) called directly return NCHW).
--
-- bfloat16 activations (O2 inference). Under M.inference (spore.inference_mode; Model:eval and
-- Model:predict run in it), a fused run of an O2 (bf16) Conv2d whose output is channels-last
-- writes it in bfloat16 when what reads it next takes that: an O2 Conv2d that fuses with its
-- BatchNorm (it reads bf16 as its bf16 operand, with no rounding pass of its own), a stock
-- ResidualBlock whose every reader of its input is such a conv (BF16_PASS[class]), a
-- SequentialCell starting with one, or a stock MaxPool2d followed by one (the max of bf16
-- values, exact); the residual join reads a bf16 identity in place. As MindSpore's O2, whose
-- cells pass float16 between them, the activations between those layers are then rounded
-- once per fused run (to bf16 here); the global mean, the head and everything else keep
-- float32. A chain run under M.inference keeps nothing for a backward:
-- M.backward after it is an error that says so.
local K = require("ffi.nn")
local cfg = require("ffi.config")
local M = {}
M.inference = false
--- spore.inference_mode(fn, ...) → fn(...) (fn a function or a module) with M.inference set,
-- restored after, also on error: forwards that keep nothing for a backward. Under amp_level
-- "O2" the activations between fused bf16 convolutions are then bfloat16, as MindSpore's O2
-- passes float16 between its cells; Model:eval and Model:predict run in it.
function M.inference_mode(fn, ...)
  local mt = type(fn) == "table" and getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error("spore.inference_mode: expected a function (or a module), got " .. type(fn), 2)
  end
  local was = M.inference
  M.inference = true
  local res = { pcall(fn, ...) }
  M.inference = was
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end
local FUSED = setmetatable({}, { __tostring = function() return "<fused>" end })
M.FUSED = FUSED
local NOFUSE
do
  local v = os.getenv("SPORE_NO_FUSE")
  if v ~= nil and v ~= "" and v ~= "0" and v ~= "1" then
    error("spore: the environment variable SPORE_NO_FUSE must be 0 or 1, got '" .. v .. "'", 0)
  end
  NOFUSE = v == "1"
end
local Conv, BN, ReLU
local fusable_dev = { [false] = {}, [true] = {} } -- [bf16][device name] = the kernel exists

local function stock(m, cls) return getmetatable(m) == cls and rawget(m, "forward") == nil end

--- true when list[i], list[i+1] are a stock Conv2d (float32, or bfloat16 under O2) and an eval-mode BatchNorm2d
-- of its width, on a device with the fused kernel
local function classes()
  if not Conv then
    Conv, BN, ReLU = require("spore.nn.conv"), require("spore.nn.batchnorm"), require("spore.nn.relu")
  end
end
local function conv_bn_at(list, i, x)
  classes()
  local c, b = list[i], list[i + 1]
  if not (b and stock(c, Conv) and stock(b, BN)) then return false end
  if b:_batch_stats() or b.num_features ~= c.out_channels then return false end
  local cache, d = fusable_dev[c._bf16 == true], x:device()
  local f = cache[d]
  if f == nil then f = K.conv2d_bn_fusable(x, c._bf16); cache[d] = f end
  return f
end

local function is_relu(m) classes(); return m ~= nil and stock(m, ReLU) end

-- channels-last: the modules that read a channels-last input in place (see the header);
-- CL_PASS[class] = true for the containers (ResidualBlock) that take it and pass cl_out on
local CL_PASS = {}
M.CL_PASS = CL_PASS
local MaxPool, GAP, Seq
local function cl_classes()
  classes()
  if not MaxPool then
    MaxPool, GAP, Seq = require("spore.nn.max_pool2d"), require("spore.nn.global_avg_pool"), require("spore.nn.sequential")
  end
end
local function takes_cl(m)
  if m == nil then return false end
  cl_classes()
  if rawget(m, "forward") ~= nil then return false end
  local mt = getmetatable(m)
  if mt == Conv or mt == BN or mt == ReLU or mt == MaxPool or mt == GAP or CL_PASS[mt] then return true end
  if mt == Seq then
    local first = m:_list()[1]
    return takes_cl(first)
  end
  return false
end
M.takes_cl = takes_cl
--- true when channels-last activations apply to module m's run on input x: oneDNN runs the
-- CPU's channels-last convolutions (conv_kernel "auto" or "onednn"), in eval mode and in
-- training (not a bf16 convolution's training: O2's backward is spore's bf16 GEMM)
local have_onednn
local function cl_on(m, x)
  if m.training ~= false and m._bf16 then return false end
  local k = cfg.conv_kernel()
  local d = x:device()
  if k == "spore" or (d ~= "cpu" and d ~= "sim") then return false end -- sim runs the cpu's kernels
  if have_onednn == nil then
    have_onednn = false
    for _, n in ipairs(cfg.conv_kernels()) do if n == "onednn" then have_onednn = true end end
  end
  return have_onednn
end
M.cl_on = cl_on
--- cl_on for module m, and when m is a Conv2d, its device runs the layer in place on
-- channels-last operands (not a LeNet-sized layer on spore's kernels)
local function cl_for(m, x)
  if not cl_on(m, x) then return false end
  if getmetatable(m) == Conv then return m:_cl_native(x) end
  return true
end
--- true for the stock modules whose forward takes (x, cl_out)
local function passes_cl(m)
  cl_classes()
  if type(m) ~= "table" or rawget(m, "forward") ~= nil then return false end
  local mt = getmetatable(m)
  return mt == Conv or mt == Seq or CL_PASS[mt] == true
end
-- bfloat16 activations: BF16_PASS[class](m, x) is true when the stock container m (a
-- ResidualBlock) reads a bf16 input x only through O2 convolutions fused with their BatchNorm
-- and through its fused join (registered by the class)
local BF16_PASS = {}
M.BF16_PASS = BF16_PASS
--- true when list[j] reads a channels-last bfloat16 x (x: the tensor it would get in float32)
-- in place, with the numbers the bf16 operand would have had anyway
local function takes_bf16(list, j, x)
  local m = list[j]
  if NOFUSE or m == nil or type(m) ~= "table" or rawget(m, "forward") ~= nil then return false end
  cl_classes()
  local mt = getmetatable(m)
  if mt == Conv then return m._bf16 == true and conv_bn_at(list, j, x) and true or false end
  if mt == MaxPool then return takes_bf16(list, j + 1, x) end -- bf16 in, the same values out
  if mt == Seq then
    local ins = rawget(m, "_inputs")
    return not (ins and ins.nofuse) and takes_bf16(m:_list(), 1, x)
  end
  local f = BF16_PASS[mt]
  return f ~= nil and f(m, x) == true
end
M.takes_bf16 = takes_bf16

--- x as an NCHW tensor (x itself unless it is channels-last): a copy into ins' buffer `key`
local base, Tn
local function nchw(ins, key, x)
  if x:is_contiguous() then return x end
  base = base or require("spore.nn.module")
  if not base.channels_last(x) then return x end
  Tn = Tn or require("ffi.tensor")
  local bufs = ins._nchw
  if not bufs then bufs = {}; ins._nchw = bufs end
  local t = bufs[key]
  if not (t and t:device() == x:device() and base.same_shape(t, x:shape())) then
    t = Tn.empty(x:shape(), nil, x:device())
    bufs[key] = t
  end
  return t:copy_(x)
end

local BNRELU = setmetatable({}, { __tostring = function() return "<bn+relu>" end })
M.BNRELU = BNRELU
local act_dev = {}
--- true when list[i] is a stock BatchNorm2d whose input x fits it, on a device with the
-- BatchNorm + ReLU kernels (training fusion; any mode)
local function bn_at(list, i, x)
  classes()
  local b = list[i]
  if not (b and stock(b, BN)) then return false end
  local s = x:shape()
  if #s ~= 4 or s[2] ~= b.num_features then return false end
  local d = x:device()
  local f = act_dev[d]
  if f == nil then f = K.batchnorm_act_fusable(x); act_dev[d] = f end
  return f
end

--- forward through list; remembers each module's input in ins. tail (optional, for a
-- residual join): {residual, owner}: when the list ends in a fusable conv + BN, they run
-- with + residual and ReLU into owner's "output" buffer and forward returns (out, true);
-- otherwise (x, false) and the caller joins.
-- cl_out (optional): the caller reads a channels-last result in place (see the header);
-- "bf16": and it takes a bfloat16 one too (M.inference; see the header).
function M.forward(list, ins, x, tail, cl_out)
  local n = #list
  local fuse = not NOFUSE and not ins.nofuse and type(x) == "table" and x.shape ~= nil
  local cl_end, bf_end = cl_out == true or cl_out == "bf16", cl_out == "bf16" and M.inference
  local infer = M.inference
  ins.inference = infer or nil
  local i = 1
  while i <= n do
    local m = list[i]
    if fuse and i < n and conv_bn_at(list, i, x) then
      ins[i] = x
      if tail and i + 1 == n then
        local cl = cl_end and cl_for(m, x)
        x = m:_forward_bn(x, list[i + 1], tail[1], true, tail[2], cl, cl and bf_end and m._bf16 == true)
        ins[i + 1] = FUSED
        return x, true
      end
      local r = list[i + 2]
      local e = is_relu(r) and i + 2 or i + 1 -- the run's last position
      local cl = (e == n and cl_end or takes_cl(list[e + 1])) and cl_for(m, x)
      local bf = cl and infer and m._bf16 == true and (e == n and bf_end or e < n and takes_bf16(list, e + 1, x))
      if e == i + 2 then
        x = m:_forward_bn(x, list[i + 1], nil, true, r, cl, bf)
        ins[i + 1], ins[i + 2] = FUSED, FUSED
        i = i + 3
      else
        x = m:_forward_bn(x, list[i + 1], nil, false, list[i + 1], cl, bf)
        ins[i + 1] = FUSED
        i = i + 2
      end
    elseif fuse and tail and i == n and bn_at(list, i, x) then
      -- a residual block's last BatchNorm (training): + identity and ReLU in its pass
      ins[i] = x
      local y = m:_forward_act(x, tail[1], true, tail[2])
      return cl_end and y or nchw(ins, "out", y), true
    elseif fuse and i < n and is_relu(list[i + 1]) and bn_at(list, i, x) then
      ins[i] = x
      x = m:_forward_act(x, nil, true, list[i + 1])
      ins[i + 1] = BNRELU
      i = i + 2
    elseif fuse and passes_cl(m) then -- a conv or container: channels-last out when its reader takes it
      ins[i] = x
      local cl = (i == n and cl_end or takes_cl(list[i + 1])) and cl_for(m, x)
      -- a container may hand on a bf16 result when its reader takes one (a Conv2d's plain
      -- forward writes float32)
      if cl and infer and getmetatable(m) ~= Conv and (i == n and bf_end or i < n and takes_bf16(list, i + 1, x)) then
        cl = "bf16"
      end
      x = m:forward(x, cl)
      i = i + 1
    else
      -- a module that does not read channels-last gets NCHW (the stock ones that do follow
      -- their input's layout)
      if type(x) == "table" and x.shape ~= nil and not takes_cl(m) then x = nchw(ins, i, x) end
      ins[i] = x
      x = m:forward(x)
      i = i + 1
    end
    fuse = fuse and type(x) == "table" and x.shape ~= nil
  end
  if not cl_end and type(x) == "table" and x.shape ~= nil then x = nchw(ins, "out", x) end
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

-- The masked-gradient protocol between residual blocks. A stock ResidualBlock's output is
-- its join's ReLU output, and its backward starts with that ReLU's relu_backward; the block
-- after it ends its backward with the add of its two branches' input gradients. When block
-- i-1's output is block i's input, block i applies block i-1's mask inside that add
-- (K.add_relu_backward) and block i-1 skips its relu_backward: one pass fewer over the
-- activation, bit for bit the same. MASK[class] = that class's stock backward, for the
-- classes whose stock instances take part through :_backward_mask(x, g, need, premasked,
-- mask) (ResidualBlock registers itself); a SequentialCell takes part through its first
-- child (the masked input gradient) and its last (the premasked output gradient).
-- Off where fusion is (SPORE_NO_FUSE=1, ins.nofuse). M.masked_joins counts the masks applied
-- that way (tests).
M.MASK = {}
M.masked_joins = 0
local Seq
local function mask_kind(m)
  local mt = getmetatable(m)
  if NOFUSE or mt == nil or rawget(m, "backward") ~= nil or rawget(m, "_backward_mask") ~= nil then return nil end
  local ins = rawget(m, "_ins") or rawget(m, "_inputs")
  if ins and ins.nofuse then return nil end
  if M.MASK[mt] and mt.backward == M.MASK[mt] then return "block" end
  Seq = Seq or require("spore.nn.sequential")
  if mt == Seq and mt.backward == M.MASK[Seq] then return "seq" end
  return nil
end
local function mask_end(m, last) -- m takes part at its output end (last) or its input end
  local k = mask_kind(m)
  if k == "block" then return true end
  if k ~= "seq" then return false end
  local l = m:_list()
  return #l > 0 and mask_end(last and l[#l] or l[1], last)
end

--- backward through list in reverse. need_input_grad == false: the caller needs no
-- gradient for the list's input, so the backward stops at the first module with a
-- trainable parameter (returns nil then); otherwise every module runs and the input
-- gradient is returned. M.on_backward (nil unless spore.dist is reducing gradients) is
-- called with each module once its backward has returned: its parameters' gradients are final.
-- premasked and mask_out (SequentialCell:_backward_mask only): g already carries the last
-- module's output mask; the caller will skip the mask of mask_out (the list's input), which
-- the first module may apply. Returns the input gradient and whether it carries that mask.
function M.backward(list, ins, g, need_input_grad, premasked, mask_out)
  if ins.inference then
    error("spore: backward after a forward run under spore.inference_mode (Model:eval/predict run in it): "
      .. "it keeps nothing for gradients (O2's activations may be bfloat16); run the forward outside it", 0)
  end
  local first = 1
  if need_input_grad == false then
    first = nil
    for i = 1, #list do
      local m = list[i]
      if not m._params or trainable(m) then first = i; break end
    end
    if not first then return nil end
  end
  local mask -- the output of a ReLU whose backward runs inside the BatchNorm's before it
  local pre = premasked and true or false -- g carries list[i]'s output mask
  for i = #list, first, -1 do
    if ins[i] == FUSED then materialize(list, ins, i) end
    local m = list[i]
    local need = i > first or need_input_grad ~= false
    local want -- the tensor whose ReLU mask m applies to its input gradient
    if need and not ins.nofuse and mask_end(m, false) then
      if i > first then
        local p = list[i - 1]
        if rawequal(p.output, ins[i]) and mask_end(p, true) then want = ins[i] end
      elseif mask_out ~= nil and rawequal(ins[i], mask_out) then
        want = mask_out
      end
    end
    if ins[i] == BNRELU and i > first then
      mask = m.output
    elseif mask then
      g = m:_backward_relu(ins[i], g, mask, need)
      mask = nil
    elseif pre or want then
      g, pre = m:_backward_mask(ins[i], g, need, pre, want)
    else
      g = m:backward(ins[i], g, need)
    end
    if not want then pre = false end
    local hook = M.on_backward
    if hook then hook(list[i]) end
  end
  if need_input_grad == false then return nil end
  return g, pre
end
return M
