--- spore.models.ResidualBlock(in, out, stride, bottleneck) — the model zoo's ResidualBlock
-- (bottleneck: conv1 1×1, conv2 3×3 carrying the stride, conv3 1×1, bn1..3; convs "same"; BN
-- eps 1e-4, momentum 0.9) or ResidualBlockBase (res_base: conv1 3×3 carrying the stride, bn1d,
-- conv2 3×3, bn2d; convs "pad" 1). down_sample_layer = [1×1 conv with the stride, BN] when
-- stride ≠ 1 or channels change. The join is one add+relu (SP_OP_ADD_RELU); in eval mode
-- it runs inside the last conv's fused kernel (spore.nn.chain).
local nn = require("spore.nn")
local K = require("ffi.nn")
local chain = require("spore.nn.chain")
local base = require("spore.nn.module")
local R = require("spore.models.resnet_common")

local Block = nn.class("ResidualBlock")
--- ResidualBlock(in, out, stride, bottleneck): the zoo's ResidualBlock (bottleneck) or
-- ResidualBlockBase (res_base, BN children named bn1d / bn2d).
function Block:__init(cin, cout, stride, bottleneck)
  stride = stride or 1
  self.bottleneck = bottleneck ~= false
  local rb = not self.bottleneck
  if self.bottleneck then
    local ch = math.floor(cout / 4)
    self:register_module("conv1", R.conv(cin, ch, 1, 1)); self:register_module("bn1", R.bn(ch))
    self:register_module("conv2", R.conv(ch, ch, 3, stride)); self:register_module("bn2", R.bn(ch))
    self:register_module("conv3", R.conv(ch, cout, 1, 1)); self:register_module("bn3", R.bn(cout))
  else
    self:register_module("conv1", R.conv(cin, cout, 3, stride, true)); self:register_module("bn1d", R.bn(cout))
    self:register_module("conv2", R.conv(cout, cout, 3, 1, true)); self:register_module("bn2d", R.bn(cout))
  end
  if stride ~= 1 or cin ~= cout then
    self:register_module("down_sample_layer", nn.SequentialCell({ R.conv(cin, cout, 1, stride, rb), R.bn(cout, rb) }))
  end
  self._relus = { nn.ReLU(), nn.ReLU() }
  self._ins = {}
end
function Block:_list()
  local r = self._relus
  if self.bottleneck then return { self.conv1, self.bn1, r[1], self.conv2, self.bn2, r[2], self.conv3, self.bn3 } end
  return { self.conv1, self.bn1d, r[1], self.conv2, self.bn2d }
end
-- cl_out: from spore.nn.chain only (the reader after this block takes a channels-last
-- output). The shortcut's output is the join's residual, which the fused join reads in
-- place, so it may be channels-last whenever the block runs so.
-- cl_out "bf16": the reader takes a bfloat16 output too (O2 inference, spore.nn.chain); the
-- shortcut's output may then be bf16 when the fused join reads it.
local function bf16_join(self, x)
  if self._ins.nofuse then return false end -- (chain.takes_bf16 checks SPORE_NO_FUSE)
  local l = self:_list()
  return chain.takes_bf16(l, #l - 1, x)
end
--- spore.nn.chain's BF16_PASS: a bf16 input x is read only by O2 convs fused with their
-- BatchNorm (conv1, the shortcut's conv) and by the fused join
function Block:_takes_bf16(x)
  local d = self.down_sample_layer
  if not chain.takes_bf16(self:_list(), 1, x) then return false end
  if d then return chain.takes_bf16({ d }, 1, x) end
  return bf16_join(self, x)
end
function Block:forward(x, cl_out)
  local cl = chain.cl_on(self, x)
  local id = self.down_sample_layer
    and self.down_sample_layer:forward(x, cl and (chain.inference and bf16_join(self, x) and "bf16" or true)) or x
  -- in eval mode the last conv + BN run with the join (+ id, ReLU) in one kernel
  local tail = self._tail or {}
  self._tail = tail
  tail[1], tail[2] = id, self
  local c, joined = chain.forward(self:_list(), self._ins, x, tail,
    cl and (cl_out == "bf16" and "bf16" or cl_out == true))
  tail[1] = nil
  if joined then return c end
  local out = self:buffer("output", c:shape(), nil, c:device(), base.channels_last(c))
  K.add(out, c, id, true)
  return out
end
function Block:backward(x, g, need_input_grad) return (self:_backward_mask(x, g, need_input_grad)) end
-- spore.nn.chain's masked-gradient protocol between consecutive blocks (a block's output is
-- its join's ReLU output, and the next block's input): premasked, g already carries that
-- ReLU's mask (the next block applied it), so this block's relu_backward is skipped; mask,
-- the input x is the previous block's output, whose ReLU mask is applied here in the join's
-- gradient sum (K.add_relu_backward: one pass instead of an add here and a relu_backward
-- there, bit for bit the same). Returns the input gradient and whether it carries the mask.
function Block:_backward_mask(x, g, need_input_grad, premasked, mask)
  local gs = g
  if not premasked then
    gs = self:buffer("grad_sum", g:shape(), nil, self.output:device(), base.channels_last(self.output))
    K.relu_backward(gs, g, self.output)
  end
  local gmain = chain.backward(self:_list(), self._ins, gs, need_input_grad)
  if need_input_grad == false then
    if self.down_sample_layer then self.down_sample_layer:backward(x, gs, false) end
    return nil, false
  end
  local gid = self.down_sample_layer and self.down_sample_layer:backward(x, gs) or gs
  local gx = self:buffer("grad_input", x:shape(), nil, x:device(), base.channels_last(x))
  if mask then
    K.add_relu_backward(gx, gmain, gid, mask)
    chain.masked_joins = chain.masked_joins + 1
    return gx, true
  end
  K.add(gx, gmain, gid, false)
  return gx, false
end

chain.CL_PASS[Block] = true
chain.BF16_PASS[Block] = Block._takes_bf16
chain.MASK[Block] = Block.backward
return Block
