--- spore.pretty — summaries of values for people: what the REPL prints.
--   pretty.value(v)    any value: tensors as tostring shows them, a net as its module tree,
--                      a checkpoint / parameter dict as a table, other tables nested
--   pretty.module(net) the tree of modules with parameter shapes and counts
--   pretty.dict(d)     name, dtype, shape and size of each entry, cut after 40 rows
-- Nothing here reads tensor memory: only shape(), dtype(), numel(), nbytes(), device().

local M = {}

M.max_rows = 40 -- rows of a dict table before "... and N more (M total)"
M.max_lines = 200 -- entries of a plain table before "..."
M.max_depth = 4 -- nesting shown; deeper tables print as "{ ... N entries }"

local function is_tensor(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and type(v.shape) == "function" and type(v.dtype) == "function" and type(v.numel) == "function"
    and mt.__tostring ~= nil and true or false
end
M.is_tensor = is_tensor

--- A module of spore.nn (own _params and _modules lists, a forward).
function M.is_module(v)
  return type(v) == "table" and type(rawget(v, "_modules")) == "table" and type(rawget(v, "_params")) == "table"
    and type(v.forward) == "function"
end

--- 12345678 → "12,345,678".
function M.commas(n)
  local s = tostring(math.floor(n))
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  local out = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return sign .. out:gsub("^,", "")
end

--- 1536 → "1.5 KiB".
function M.bytes(n)
  if n < 1024 then return string.format("%d B", n) end
  local units = { "KiB", "MiB", "GiB", "TiB" }
  local u = 0
  repeat n = n / 1024; u = u + 1 until n < 1024 or u == #units
  return string.format("%.1f %s", n, units[u])
end

local function shape_str(s) return "[" .. table.concat(s, ", ") .. "]" end

local function pad(s, w) return s .. string.rep(" ", w - #s) end
local function lpad(s, w) return string.rep(" ", w - #s) .. s end

---------------------------------------------------------------- modules
-- the tensor of a parameter, nil when it has none (or it was freed)
local function param_tensor(p)
  local t = type(p) == "table" and p.data or nil
  if is_tensor(t) and rawget(t, "h") ~= nil then return t end
  return nil
end

local function count(m, seen)
  local n, trainable = 0, 0
  for _, e in ipairs(m._params) do
    local p = e[2]
    local t = param_tensor(p)
    if t and not seen[p] then
      seen[p] = true
      n = n + t:numel()
      if p.requires_grad then trainable = trainable + t:numel() end
    end
  end
  for _, e in ipairs(m._modules) do
    local a, b = count(e[2], seen)
    n, trainable = n + a, b + trainable
  end
  return n, trainable
end

local function one_line(m)
  if #m._modules > 0 then return getmetatable(m).__name or "Module" end
  local ok, r = pcall(m.__repr, m)
  if not ok or type(r) ~= "string" then return getmetatable(m).__name or "Module" end
  return (r:gsub("\n%s*", " "))
end

--- The tree of a net: one row per module (name, what it is, its own parameters' shapes,
-- the parameter count of its subtree), under a header with the totals and the device.
function M.module(net)
  local rows = {}
  local function walk(m, name, depth, seen)
    local own = {}
    local frozen = 0
    for _, e in ipairs(m._params) do
      local t = param_tensor(e[2])
      own[#own + 1] = e[1] .. " " .. (t and shape_str(t:shape()) or "(no data)")
      if not e[2].requires_grad then frozen = frozen + 1 end
    end
    local n = count(m, {})
    local note = (#m._params > 0 and frozen == #m._params) and " frozen" or ""
    rows[#rows + 1] = { string.rep("  ", depth) .. name, one_line(m), table.concat(own, ", "),
      (n > 0 or #m._params > 0) and (M.commas(n) .. note) or "" }
    for _, e in ipairs(m._modules) do walk(e[2], e[1], depth + 1, seen) end
  end
  for _, e in ipairs(net._modules) do walk(e[2], e[1], 1, {}) end
  local w = { 0, 0, 0, 0 }
  for _, r in ipairs(rows) do for i = 1, 4 do if #r[i] > w[i] then w[i] = #r[i] end end end
  local total, trainable = count(net, {})
  local okd, dev = pcall(net.device, net)
  local head = string.format("%s: %s parameters (%s trainable)%s", getmetatable(net).__name or "Module",
    M.commas(total), M.commas(trainable), okd and (" on " .. tostring(dev)) or "")
  if #net._params > 0 then
    local own = {}
    for _, e in ipairs(net._params) do
      local t = param_tensor(e[2])
      own[#own + 1] = e[1] .. " " .. (t and shape_str(t:shape()) or "(no data)")
    end
    head = head .. "\n  own: " .. table.concat(own, ", ")
  end
  local out = { head }
  for _, r in ipairs(rows) do
    local line = pad(r[1], w[1]) .. "  " .. pad(r[2], w[2])
    if w[3] > 0 then line = line .. "  " .. pad(r[3], w[3]) end
    line = line .. "  " .. lpad(r[4], w[4])
    out[#out + 1] = (line:gsub("%s+$", ""))
  end
  return table.concat(out, "\n")
end

---------------------------------------------------------------- dicts
-- the ordered names of a dict: the checkpoint's own order when it keeps one (spore.ckpt
-- dicts), else sorted
local function dict_keys(d)
  local ck = package.loaded["spore.ckpt"]
  local mt = getmetatable(d)
  if ck and mt and type(mt.__index) == "table" and mt.__index.keys == ck.keys then return ck.keys(d) end
  local ks = {}
  for k in pairs(d) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

--- True for a name → tensor table (what spore.load_checkpoint returns, net:parameters_dict(),
-- a dict of Parameters): string keys only, every value a tensor, a Parameter or a string,
-- at least one tensor.
function M.is_dict(d)
  if type(d) ~= "table" or is_tensor(d) or M.is_module(d) then return false end
  local mt = getmetatable(d)
  if mt and mt.__tostring then return false end
  local tensors = 0
  for k, v in pairs(d) do
    if type(k) ~= "string" then return false end
    if is_tensor(v) or param_tensor(v) then tensors = tensors + 1
    elseif type(v) ~= "string" then return false end
  end
  return tensors > 0
end

--- A dict as a table: name, dtype, shape, size (bytes), at most opts.max_rows (40) rows,
-- then "... and N more (M total)"; the header gives the entry, element and byte totals.
function M.dict(d, opts)
  opts = require("spore.opts").check("spore.pretty.dict", opts, { "max_rows" }, nil, { max_rows = "integer" })
  local max = opts.max_rows or M.max_rows
  local keys = dict_keys(d)
  local rows, numel, nbytes = {}, 0, 0
  for i, k in ipairs(keys) do
    local v = rawget(d, k)
    local t = is_tensor(v) and v or param_tensor(v)
    local row
    if t and rawget(t, "h") ~= nil then
      numel, nbytes = numel + t:numel(), nbytes + t:nbytes()
      row = { k, t:dtype(), shape_str(t:shape()), M.bytes(t:nbytes()) }
    elseif is_tensor(v) then
      row = { k, "-", "(freed)", "" }
    else
      local s = tostring(v)
      if #s > 40 then s = s:sub(1, 37) .. "..." end
      row = { k, "str", string.format("%q", s), M.bytes(#tostring(v)) }
    end
    if i <= max then rows[#rows + 1] = row end
  end
  local w = { #"name", #"dtype", #"shape", #"size" }
  for _, r in ipairs(rows) do for i = 1, 4 do if #r[i] > w[i] then w[i] = #r[i] end end end
  local function fmt(r) return "  " .. pad(r[1], w[1]) .. "  " .. pad(r[2], w[2]) .. "  " .. pad(r[3], w[3]) .. "  " .. lpad(r[4], w[4]) end
  local out = { string.format("dict: %d entries, %s elements, %s", #keys, M.commas(numel), M.bytes(nbytes)),
    fmt({ "name", "dtype", "shape", "size" }) }
  for _, r in ipairs(rows) do out[#out + 1] = (fmt(r):gsub("%s+$", "")) end
  if #keys > #rows then
    out[#out + 1] = string.format("  ... and %d more (%d total)", #keys - #rows, #keys)
  end
  return table.concat(out, "\n")
end

--- Collapse "dir/../" in a path for display ("scripts/../lua/spore/x.lua" → "lua/spore/x.lua").
function M.tidy_path(p)
  local prev
  repeat
    prev = p
    p = p:gsub("([^/%s]+)/%.%./", function(seg) if seg == ".." or seg == "." then return nil end return "" end, 1)
  until p == prev
  return p
end

---------------------------------------------------------------- any value
local function sorted_keys(v)
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta == tb and (ta == "number" or ta == "string") then return a < b end
    if ta == tb then return tostring(a) < tostring(b) end
    return ta < tb
  end)
  return keys
end

local function scalar(v) local t = type(v) return t == "number" or t == "string" or t == "boolean" end

--- Any value as text. Strings are quoted; tables print nested with sorted keys, on one
-- line when they hold only a few scalars ({ 2, 2 }), cycles marked, at most M.max_lines
-- entries per table; tensors, nets and dicts as above; other values with tostring.
function M.value(v, indent, seen)
  indent, seen = indent or "", seen or {}
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "function" then
    local info = debug.getinfo(v, "S")
    if info.what ~= "C" and info.source:sub(1, 1) == "@" then
      return tostring(v) .. " <" .. M.tidy_path(info.source:sub(2)) .. ":" .. info.linedefined .. ">"
    end
    return tostring(v)
  end
  if type(v) ~= "table" then return tostring(v) end
  local nested = indent ~= ""
  if M.is_module(v) then
    if nested then
      return string.format("%s (%s parameters)", getmetatable(v).__name or "Module", M.commas((count(v, {}))))
    end
    if #v._modules > 0 then return M.module(v) end
    return tostring(v)
  end
  if is_tensor(v) then
    local s = tostring(v)
    if nested and (s:find("\n") or #s > 60) and rawget(v, "h") ~= nil then
      return string.format("tensor<%s %s %s>", v:dtype(), shape_str(v:shape()), v:device())
    end
    return s
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  if M.is_dict(v) then
    if nested then return string.format("dict (%d entries)", #dict_keys(v)) end
    return M.dict(v)
  end
  if seen[v] then return "<cycle>" end
  local keys = sorted_keys(v)
  if #indent >= 2 * M.max_depth and #keys > 0 then return "{ ... " .. #keys .. " entries }" end
  seen[v] = true
  if #keys == 0 then seen[v] = nil return "{}" end
  local n = #v
  local function key_of(k)
    if type(k) == "number" and k >= 1 and k <= n and k == math.floor(k) then return "" end
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k .. " = " end
    return "[" .. M.value(k, "", seen) .. "] = "
  end
  -- a few scalars: one line
  if #keys <= 16 then
    local all, parts = true, {}
    for _, k in ipairs(keys) do
      if not scalar(v[k]) or not (scalar(k)) then all = false break end
      parts[#parts + 1] = key_of(k) .. M.value(v[k])
    end
    if all then
      local line = "{ " .. table.concat(parts, ", ") .. " }"
      if #line + #indent <= 80 then seen[v] = nil return line end
    end
  end
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = indent .. "  " .. key_of(k) .. M.value(v[k], indent .. "  ", seen)
    if #parts >= M.max_lines and #keys > M.max_lines then
      parts[#parts + 1] = indent .. "  ... and " .. (#keys - M.max_lines) .. " more"
      break
    end
  end
  seen[v] = nil
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

return M
