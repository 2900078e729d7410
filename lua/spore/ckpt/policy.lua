--- spore.ckpt.policy — loading policies as plain data: renaming rules, prefix
-- filters, MindSpore's prefix fallback (which never crosses from optimizer state
-- into parameters), dtype-cast rules.
local P = {}

--- Optimizer-state prefixes: a checkpoint key starting with one of these is state,
-- never a network weight.
P.STATE_PREFIXES = { "moments", "moment1", "moment2", "adam_m", "adam_v", "vhat", "accum", "mean_grad",
  "mean_square", "linear", "ms", "mom", "lamb_m", "lamb_v", "velocity" }
local STATE = {}
for _, p in ipairs(P.STATE_PREFIXES) do STATE[p] = true end

--- true when a name is optimizer state (`moments.conv1.weight`, `adam_v.fc.bias`...).
function P.is_state(name)
  local first = name:match("^([^%.]+)%.")
  return first ~= nil and STATE[first] == true
end

local function as_list(x)
  if x == nil then return nil end
  if type(x) == "string" then return { x } end
  return x
end

local function starts(s, p) return s:sub(1, #p) == p end

--- MindSpore's filters: specify_prefix keeps, then filter_prefix drops; choice_func
-- only when both are nil. Returns keep(name) -> bool.
function P.filter(opts)
  local spec, filt, choice = as_list(opts.specify_prefix), as_list(opts.filter_prefix), opts.choice_func
  return function(name)
    if spec then
      local ok = false
      for _, p in ipairs(spec) do if starts(name, p) then ok = true break end end
      if not ok then return false end
    end
    if filt then
      for _, p in ipairs(filt) do if starts(name, p) then return false end end
    end
    if not spec and not filt and choice then return choice(name) and true or false end
    return true
  end
end

--- Apply rename rules in order: `{pattern, replacement}` (Lua patterns, string.gsub)
-- or `function(name, dict) -> new name | nil (drop)`; dict (optional) is the checkpoint
-- being renamed, keyed by its original names, so a rule can look at sibling keys
-- (spore.ckpt.rules.torch_to_mindspore does). Returns the new name or nil.
function P.rename(name, rules, dict)
  if not rules then return name end
  for i, r in ipairs(rules) do
    if name == nil then return nil end
    if type(r) == "function" then
      name = r(name, dict)
    elseif type(r) == "table" and type(r[1]) == "string" then
      name = (name:gsub(r[1], r[2] or ""))
    else
      error("rename rule " .. i .. ": expected {pattern, replacement} or a function", 0)
    end
    if name ~= nil and type(name) ~= "string" then
      error("rename rule " .. i .. " returned a " .. type(name) .. ", expected a string or nil", 0)
    end
  end
  return name
end

local FLOATS = { float16 = true, bfloat16 = true, float32 = true, float64 = true }
--- "same" | "cast" | "incompatible" for a checkpoint dtype into a parameter dtype.
function P.dtype_relation(from, to)
  if from == to then return "same" end
  if FLOATS[from] and FLOATS[to] then return "cast" end
  if not FLOATS[from] and not FLOATS[to] and from ~= "bool" and to ~= "bool" then return "cast" end
  return "incompatible"
end

--- Shapes equal, or equal after dropping trailing 1-dims (MindSpore reshapes those).
function P.shape_compatible(a, b)
  local function strip(s)
    local r = {}
    for i = 1, #s do r[i] = s[i] end
    while #r > 0 and r[#r] == 1 do r[#r] = nil end
    return r
  end
  if #a == #b then
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end
  local x, y = strip(a), strip(b)
  if #x ~= #y then return false end
  for i = 1, #x do if x[i] ~= y[i] then return false end end
  return true
end

--- true when any dotted component of a prefix is an optimizer-state name
-- ("moments.", "network.moments.", "opt.adam_m.").
function P.prefix_has_state(prefix)
  for comp in prefix:gmatch("[^%.]+") do if STATE[comp] then return true end end
  return false
end

--- MindSpore's prefix fallback for missing names: find a key K = prefix .. N for a
-- missing name N, where prefix ends with "." and is not optimizer state. Returns
-- the prefix or nil.
function P.find_prefix(missing, keys_set, keys_list)
  for _, n in ipairs(missing) do
    for _, k in ipairs(keys_list) do
      if #k > #n and k:sub(-#n) == n then
        local prefix = k:sub(1, #k - #n)
        if prefix:sub(-1) == "." and not P.prefix_has_state(prefix) then
          return prefix
        end
      end
    end
  end
  return nil
end

return P
