--- spore.nn.SequentialCell({m1, m2, ...}) or SequentialCell(m1, m2, ...): children named
-- "0", "1", ...; backward runs the children in reverse with their recorded inputs.
local base = require("spore.nn.module")

local Seq = base.class("SequentialCell")

function Seq:__init(...)
  local list = ...
  if not (type(list) == "table" and getmetatable(list) == nil) then list = { ... } end
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
function Seq:forward(x)
  local ins = self._inputs or {}
  self._inputs = ins
  for i, e in ipairs(self._modules) do
    ins[i] = x
    x = e[2]:forward(x)
  end
  self.output = x
  return x
end
function Seq:backward(_, gout, need_input_grad)
  local ins = self._inputs
  for i = #self._modules, 1, -1 do
    local need = i > 1 or need_input_grad ~= false
    gout = self._modules[i][2]:backward(ins[i], gout, need)
  end
  return gout
end

return Seq
