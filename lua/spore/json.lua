--- spore.json — a small JSON encoder for results lines and reports.
-- encode(value[, key_order]) → string. Arrays are tables with 1..n keys (an empty
-- table encodes as [] unless marked with json.object); other tables are objects
-- with keys sorted (or in the order of the table's `__order` list / key_order).
-- NaN and ±Inf encode as null (JSON has no spelling for them).
local M = {}
local OBJ = setmetatable({}, { __mode = "k" })

--- Mark t so an empty t encodes as {} rather than [].
function M.object(t) t = t or {}; OBJ[t] = true; return t end

local esc = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return esc[c] or string.format("\\u%04x", c:byte()) end) .. '"'
end

local function is_array(t)
  if OBJ[t] then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
  end
  return true
end

local function enc(v, seen)
  local tv = type(v)
  if v == nil then return "null" end
  if tv == "boolean" then return tostring(v) end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
    for _, f in ipairs({ "%.15g", "%.16g", "%.17g" }) do -- shortest that round-trips
      local s = string.format(f, v)
      if tonumber(s) == v then return s end
    end
  end
  if tv == "string" then return str(v) end
  if tv == "table" then
    if getmetatable(v) and getmetatable(v).__tojson then return getmetatable(v).__tojson(v) end
    if seen[v] then error("json: cycle in table", 0) end
    seen[v] = true
    local parts = {}
    if is_array(v) then
      for i = 1, #v do parts[i] = enc(v[i], seen) end
      seen[v] = nil
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    if type(rawget(v, "__order")) == "table" then
      for _, k in ipairs(v.__order) do keys[#keys + 1] = k end
    else
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
    end
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      if k ~= "__order" then parts[#parts + 1] = str(k) .. ":" .. enc(x, seen) end
    end
    seen[v] = nil
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if tv == "cdata" then return enc(tonumber(v), seen) end
  error("json: cannot encode a " .. tv, 0)
end

--- Encode a Lua value as compact JSON.
function M.encode(v) return enc(v, {}) end

--- An object that keeps its keys in insertion order when encoded.
function M.ordered()
  local order = {}
  return setmetatable({ __order = order }, {
    __newindex = function(t, k, val) order[#order + 1] = k; rawset(t, k, val) end,
  })
end

return M
