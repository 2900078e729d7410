--- spore.nn.SequentialCell({m1, m2, ...}) or SequentialCell(m1, m2, ...): children named
-- "0", "1", ...; forward and backward go through spore.nn.chain (the one runner).
local base = require("spore.nn.module")
local chain = require("spore.nn.chain")

local Seq = base.class("SequentialCell")

function Seq:__init(...)
  local list = ...
  if not (type(list) == "table" and getmetatable(list) == nil) then list = { ... }
  elseif select("#", ...) > 1 then
    error("SequentialCell: give the cells as one list or as separate arguments, not both", 3)
  end
  for i, m in ipairs(list) do
    if type(m) ~= "table" or not m._modules then
      error(("SequentialCell: cell %d is a %s, not a module"):format(i, type(m)), 3)
    end
  end
  for k in pairs(list) do
    if type(k) ~= "number" then error(("SequentialCell: unexpected key '%s' (cells go in a list)"):format(tostring(k)), 3) end
  end
  self.n = 0
  for _, m in ipairs(list) do self:append(m) end
end
function Seq:append(m)
  self:register_module(tostring(self.n), m)
  self.n = self.n + 1
  return self
end
function Seq:__repr()
  local parts = {}
  for _, e in ipairs(self._modules) do parts[#parts + 1] = "  (" .. e[1] .. "): " .. tostring(e[2]) end
  return "SequentialCell(\n" .. table.concat(parts, "\n") .. "\n)"
end
-- the children in order, for the one sequential runner (spore.nn.chain)
function Seq:_list()
  local l = self._l or {}
  self._l = l
  for i, e in ipairs(self._modules) do l[i] = e[2] end
  for i = #self._modules + 1, #l do l[i] = nil end
  return l
end
-- cl_out: from spore.nn.chain only (the reader after this cell takes a channels-last result)
function Seq:forward(x, cl_out)
  self._inputs = self._inputs or {}
  self.output = chain.forward(self:_list(), self._inputs, x, nil, cl_out)
  return self.output
end
function Seq:backward(_, gout, need_input_grad)
  return (chain.backward(self:_list(), self._inputs, gout, need_input_grad))
end
-- spore.nn.chain's masked-gradient protocol, passed to the first and last children
function Seq:_backward_mask(_, gout, need_input_grad, premasked, mask)
  return chain.backward(self:_list(), self._inputs, gout, need_input_grad, premasked, mask)
end

chain.MASK[Seq] = Seq.backward
return Seq
