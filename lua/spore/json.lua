--- spore.json — the one JSON module of spore's Lua code: scripts' result lines, run records
-- (metrics.jsonl), reports, and every reader of JSON text.
--   encode(value) → string: through dkjson (Debian `lua-dkjson`), because lua-cjson 2.1 cannot
--     keep an object's key order nor tell an empty array from an empty object. Arrays are
--     tables with 1..n keys (an empty table encodes as [] unless marked with json.object);
--     other tables are objects with keys sorted (or in the order of json.ordered).
--     Numbers are written with the fewest digits that read back to the same double.
--   decode(text) → value: through lua-cjson (Debian `lua-cjson`), strict RFC 8259 (NaN,
--     Infinity and trailing garbage are refused); JSON null decodes to json.null.
-- The NaN/Inf policy (JSON has no spelling for them): NaN, +Inf and -Inf encode as null,
-- everywhere (result lines, metrics.jsonl, inspect --json). Strings that are not valid UTF-8
-- are encoded with U+FFFD in place of each bad byte (json.utf8_valid), so the output is always
-- valid JSON.
local dkjson = require("dkjson")
local cjson = require("cjson").new() -- a private instance: our settings only
cjson.decode_invalid_numbers(false)

local M = {}
local OBJ = setmetatable({}, { __mode = "k" })

--- The value JSON null decodes to (and that encodes as null inside arrays).
M.null = cjson.null

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


local function is_array(t)
  if OBJ[t] then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
  end
  return true
end

-- a number written with the fewest digits that read back to it (dkjson keeps only 14)
local NUM = { __tojson = function(self) return self[1] end }
local function num(v)
  if v ~= v or v == math.huge or v == -math.huge then return dkjson.null end
  if v == math.floor(v) and math.abs(v) < 2^53 then return setmetatable({ string.format("%d", v) }, NUM) end
  for _, f in ipairs({ "%.15g", "%.16g", "%.17g" }) do
    local s = string.format(f, v)
    if tonumber(s) == v then return setmetatable({ s }, NUM) end
  end
end

-- a copy of v that dkjson encodes as spore's policy says
local function prep(v, seen)
  local tv = type(v)
  if v == nil or v == M.null then return dkjson.null end
  if tv == "number" then return num(v) end
  if tv == "string" then return M.utf8_valid(v) end
  if tv == "boolean" then return v end
  if tv == "cdata" then return num(tonumber(v)) end
  if tv == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tojson then return setmetatable({ mt.__tojson(v) }, NUM) end
    if seen[v] then error("json: cycle in table", 0) end
    seen[v] = true
    local out
    if is_array(v) then
      out = setmetatable({}, { __jsontype = "array" })
      for i = 1, #v do out[i] = prep(v[i], seen) end
    else
      local keys = {}
      if type(rawget(v, "__order")) == "table" then
        local had = {}
        for _, k in ipairs(v.__order) do if not had[k] then had[k] = true; keys[#keys + 1] = k end end
      else
        for k in pairs(v) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
      end
      out = setmetatable({}, { __jsontype = "object", __jsonorder = keys })
      local names = {}
      for i, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        names[i] = M.utf8_valid(k)
        out[names[i]] = prep(x, seen)
      end
      getmetatable(out).__jsonorder = names
    end
    seen[v] = nil
    return out
  end
  error("json: cannot encode a " .. tv, 0)
end

--- Encode a Lua value as compact JSON (one line).
function M.encode(v)
  local s = dkjson.encode(prep(v, {}))
  return s
end

--- Decode JSON text (strict); raises "json: MESSAGE" on malformed text.
function M.decode(s)
  local ok, v = pcall(cjson.decode, s)
  if not ok then error("json: " .. tostring(v), 0) end
  return v
end

--- An object that keeps its keys in insertion order when encoded. ordered(init, keys)
-- starts it with init's keys in the order of the list keys.
function M.ordered(init, keys)
  local order = {}
  local t = setmetatable({ __order = order }, {
    __newindex = function(t, k, val) order[#order + 1] = k; rawset(t, k, val) end,
  })
  for _, k in ipairs(keys or {}) do t[k] = init[k] end
  return t
end

return M
