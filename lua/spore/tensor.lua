--- spore.tensor — the Tensor class (from the bindings) plus its printing.
-- `tostring(t)` prints like PyTorch: `tensor([[1., 2.],\n        [3., 4.]])`,
-- summarised with `...` past 1,000 elements (3 edge items per dimension).
local B = require("ffi.tensor")
local Tensor = B.Tensor

local M = {}
for k, v in pairs(B) do M[k] = v end

local THRESHOLD, EDGE = 1000, 3
M.print_options = { threshold = THRESHOLD, edgeitems = EDGE, precision = 4 }

local function is_int_dtype(dt) return not dt:match("^b?float") end

local function fmt_special(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
end

-- Choose one formatter for all shown values (as numpy/PyTorch do).
local function make_formatter(values, dtype)
  local prec = M.print_options.precision
  if is_int_dtype(dtype) then
    if dtype == "bool" then return function(v) return v ~= 0 and "True" or "False" end end
    return function(v) return string.format("%d", v) end
  end
  local all_int, maxa, mina = true, 0, math.huge
  for _, v in ipairs(values) do
    if not fmt_special(v) then
      local a = math.abs(v)
      if v ~= math.floor(v) then all_int = false end
      if a > maxa then maxa = a end
      if a ~= 0 and a < mina then mina = a end
    end
  end
  if all_int and maxa < 1e8 then
    return function(v) return fmt_special(v) or string.format("%.0f.", v) end
  end
  if maxa >= 1e8 or (mina < 1e-4) or (maxa / mina > 1e3 and maxa > 1e3) then
    return function(v) return fmt_special(v) or string.format("%." .. prec .. "e", v) end
  end
  return function(v) return fmt_special(v) or string.format("%." .. prec .. "f", v) end
end

local function format_tensor(t)
  local shape, dtype = t:shape(), t:dtype()
  local n = t:numel()
  local summarize = n > M.print_options.threshold
  local edge = M.print_options.edgeitems
  -- collect shown values with their positions
  local function shown_indices(size)
    if summarize and size > 2 * edge then
      local idx = {}
      for i = 1, edge do idx[#idx + 1] = i end
      idx[#idx + 1] = false -- the "..." marker
      for i = size - edge + 1, size do idx[#idx + 1] = i end
      return idx
    end
    local idx = {}
    for i = 1, size do idx[i] = i end
    return idx
  end
  local flat = (not summarize) and t:flat() or nil
  local strides = {}
  local s = 1
  for d = #shape, 1, -1 do strides[d] = s; s = s * shape[d] end
  local function value_at(pos)
    if flat then
      local off = 0
      for d = 1, #shape do off = off + (pos[d] - 1) * strides[d] end
      return flat[off + 1]
    end
    return t:get(pos)
  end
  if #shape == 0 then
    local v = t:item()
    return make_formatter({ v }, dtype)(v), dtype
  end
  -- first pass: gather values to choose the format and width
  local vals = {}
  local pos = {}
  local function gather(d)
    for _, i in ipairs(shown_indices(shape[d])) do
      if i then
        pos[d] = i
        if d == #shape then vals[#vals + 1] = value_at(pos) else gather(d + 1) end
      end
    end
  end
  gather(1)
  local f = make_formatter(vals, dtype)
  local width = 0
  for _, v in ipairs(vals) do width = math.max(width, #f(v)) end
  local function pad(sv) return string.rep(" ", width - #sv) .. sv end
  local indent0 = #"tensor("
  local function render(d)
    local parts = {}
    for _, i in ipairs(shown_indices(shape[d])) do
      if not i then
        parts[#parts + 1] = "..."
      else
        pos[d] = i
        if d == #shape then parts[#parts + 1] = pad(f(value_at(pos)))
        else parts[#parts + 1] = render(d + 1) end
      end
    end
    if d == #shape then return "[" .. table.concat(parts, ", ") .. "]" end
    local sep = "," .. string.rep("\n", #shape - d) .. string.rep(" ", indent0 + d)
    return "[" .. table.concat(parts, sep) .. "]"
  end
  return render(1), dtype
end

Tensor.__tostring = function(t)
  if rawget(t, "h") == nil then return "tensor(<freed>)" end
  local body, dtype = format_tensor(t)
  local suffix = ""
  if dtype ~= "float32" and dtype ~= "int64" and dtype ~= "bool" then suffix = ", dtype=" .. dtype end
  if t:numel() == 0 then body = "[]"; suffix = ", size=(" .. table.concat(t:shape(), ", ") .. ")" .. suffix end
  return "tensor(" .. body .. suffix .. ")"
end

--- spore.tensor(data[, dtype]): from nested tables (float32 by default) or a number.
function M.tensor(data, dtype) return B.from_table(data, dtype) end

return M
