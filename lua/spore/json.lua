--- spore.json — a small JSON encoder for results lines and reports.
-- encode(value[, key_order]) → string. Arrays are tables with 1..n keys (an empty
-- table encodes as [] unless marked with json.object); other tables are objects
-- with keys sorted (or in the order of the table's `__order` list / key_order).
-- NaN and ±Inf encode as null (JSON has no spelling for them). Strings that are not valid
-- UTF-8 are encoded with U+FFFD in place of each bad byte (json.utf8_valid), so the output
-- is always valid JSON.
local M = {}
local OBJ = setmetatable({}, { __mode = "k" })

--- Mark t so an empty t encodes as {} rather than [].
function M.object(t) t = t or {}; OBJ[t] = true; return t end

--- utf8_valid(s) → s when it is valid UTF-8, else a copy where every byte that does not
-- belong to a well-formed sequence (stray continuation bytes, truncated or overlong
-- sequences, surrogates, code points past U+10FFFF) is replaced by U+FFFD, as
-- decoders' "replace" mode does. JSON text must be UTF-8 (RFC 8259).
local REPL = "\239\191\189" -- U+FFFD
function M.utf8_valid(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n, start = {}, 1, #s, 1
  local byte = string.byte
  while i <= n do
    local c = byte(s, i)
    local len, lo, hi = 0, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    end
    local ok = len > 0 and i + len - 1 <= n
    if ok and len > 1 then
      local c2 = byte(s, i + 1)
      ok = c2 >= lo and c2 <= hi
      for k = 2, len - 1 do
        if not ok then break end
        local ck = byte(s, i + k)
        ok = ck >= 0x80 and ck <= 0xBF
      end
    end
    if ok then
      i = i + len
    else
      out[#out + 1] = s:sub(start, i - 1)
      out[#out + 1] = REPL
      i = i + 1
      start = i
    end
  end
  if start == 1 then return s end
  out[#out + 1] = s:sub(start)
  return table.concat(out)
end

local esc = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function str(s)
  return '"' .. M.utf8_valid(s):gsub('[%c"\\]', function(c) return esc[c] or string.format("\\u%04x", c:byte()) end) .. '"'
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
