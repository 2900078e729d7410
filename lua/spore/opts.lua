--- spore.opts — the one options checker. Every options table that spore takes goes through
-- `opts.check`, so that nothing is silent (README: "Nothing silent"):
--   * an unknown key is an error that names it and suggests the nearest known key;
--   * a key that MindSpore has but spore does not implement (`refused`: key → why) is an
--     error that says so; it is never ignored;
--   * a key whose value has the wrong type (`types`: key → "number"|"string"|... or a
--     list of them) is an error naming the key and both types.
-- Usage:
--   local opts = require("spore.opts")
--   o = opts.check("spore.load_checkpoint", o, {"net", "strict_load", "filter_prefix"},
--                  {choice_func = "use spore.ckpt rules"}, {net = "table"})
local M = {}

--- Levenshtein distance (small strings only).
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

local function as_set(list)
  if list == nil then return {} end
  if list[1] == nil and next(list) ~= nil then return list end -- already a set (key → true)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end
M.as_set = as_set

--- nearest(key, known) → the closest known key (by edit distance, case-insensitive), or nil
-- when nothing is close (distance > max(2, #key/3)).
function M.nearest(key, known)
  key = tostring(key)
  local best, bd = nil, math.huge
  local lk = key:lower()
  for k in pairs(as_set(known)) do
    local d = M.distance(lk, tostring(k):lower())
    if d < bd or (d == bd and tostring(k) < tostring(best)) then best, bd = k, d end
  end
  if best and bd <= math.max(2, math.floor(#key / 3)) then return best end
  return nil
end

local function type_ok(v, want)
  if type(want) == "table" then
    for _, w in ipairs(want) do if type_ok(v, w) then return true end end
    return false
  end
  if want == "integer" then return type(v) == "number" and v == math.floor(v) end
  if want == "any" then return true end
  return type(v) == want
end

--- check(where, o, known, refused, types, level) → o (or {} when o is nil).
-- where: the call as the user wrote it ("spore.Model", "CheckpointConfig", ...);
-- known: list or set of accepted keys; refused: key → why (MindSpore keys not implemented);
-- types: key → expected type (see type_ok); level: error level (default 3 = caller's caller).
function M.check(where, o, known, refused, types, level)
  level = level or 3
  if o == nil then return {} end
  if type(o) ~= "table" then
    error(("%s: options must be a table, got %s"):format(where, type(o)), level)
  end
  local kset = as_set(known)
  for k, v in pairs(o) do
    if type(k) ~= "string" then
      error(("%s: option keys must be strings, got %s %s"):format(where, type(k), tostring(k)), level)
    end
    if refused and refused[k] then
      error(("%s: option '%s' is MindSpore's, but spore does not implement it: %s"):format(
        where, k, refused[k]), level)
    end
    if not kset[k] then
      local near = M.nearest(k, kset)
      error(("%s: unknown option '%s'%s"):format(where, k,
        near and (" (did you mean '" .. near .. "'?)") or ""), level)
    end
    local want = types and types[k]
    if want and not type_ok(v, want) then
      local w = type(want) == "table" and table.concat(want, " or ") or want
      error(("%s: option '%s' must be %s, got %s"):format(where, k, w, type(v)), level)
    end
  end
  return o
end

--- is_options(v) → true when v is an options table: a plain table (no metatable) with no
-- array part and no `kind` (an initializer spec), so a constructor can tell
-- Conv2d(1, 2, 3, {stride = 2}) from Conv2d(1, 2, 3, {2, 2}) and Dense(1, 2, Normal(0.02)).
function M.is_options(v)
  return type(v) == "table" and getmetatable(v) == nil and v[1] == nil and v.kind == nil
end

--- defaults_only(where, o, defaults, level): keys that MindSpore has and spore implements only
-- at MindSpore's default value (data_format = "NCHW", dtype = float32, ceil_mode = false...):
-- the default is accepted, any other value is refused by name. defaults: key → {value, why}.
function M.defaults_only(where, o, defaults, level)
  for k, d in pairs(defaults) do
    local v = o[k]
    if v ~= nil and v ~= d[1] and not (type(v) == "string" and type(d[1]) == "string" and v:lower() == d[1]:lower()) then
      error(("%s: option '%s' = %s is MindSpore's, but spore implements only %s = %s: %s"):format(
        where, k, tostring(v), k, tostring(d[1]), d[2]), (level or 3))
    end
  end
end

return M
