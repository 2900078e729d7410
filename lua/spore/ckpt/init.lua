--- spore.ckpt — MindSpore's checkpoint API (load_checkpoint, load_param_into_net,
-- save_checkpoint) over the engine's .ckpt / safetensors readers and writers.
--
-- Parameter dicts: `load_checkpoint` returns a table name -> Tensor (a `str` entry
-- gives a Lua string). The file order is kept beside it:
--   ckpt.keys(dict)        -> ordered array of names (also `dict:keys()` unless the
--                             checkpoint has a tensor literally named "keys")
--   for name, t in ckpt.pairs(dict) do ... end   -- ordered iteration
-- Names added to the dict later come after the file's names, sorted.
require("spore") -- puts bindings/ on package.path
local B = require("ffi.ckpt")
local T = require("ffi.tensor")
local P = require("spore.ckpt.policy")
local Report = require("spore.ckpt.report")

local opts_check = require("spore.opts").check

local M = {}
M.policy = P

---------------------------------------------------------------- options (MindSpore 2.10's names)
-- load_param_into_net(net, parameter_dict, strict_load=False, remove_redundancy=False)
local LPIN_KEYS = { "strict_load", "rename", "on_shape_mismatch", "on_dtype_mismatch", "prefix_fallback", "warn" }
local LPIN_REFUSED = { remove_redundancy = "parallel redundancy removal (a broadcast between ranks) is not implemented" }
local LPIN_TYPES = { strict_load = "boolean", rename = "table", on_shape_mismatch = "string",
  on_dtype_mismatch = "string", prefix_fallback = "boolean", warn = { "boolean", "function" } }
-- load_checkpoint(ckpt_file_name, net=None, strict_load=False, filter_prefix=None, dec_key=None,
-- dec_mode="AES-GCM", specify_prefix=None, choice_func=None, crc_check=False,
-- remove_redundancy=False, format="ckpt")
local LOAD_KEYS = { "net", "strict_load", "filter_prefix", "dec_key", "dec_mode", "specify_prefix", "choice_func",
  "crc_check", "format", "on_unknown_dtype" }
for _, k in ipairs(LPIN_KEYS) do LOAD_KEYS[#LOAD_KEYS + 1] = k end
local LOAD_TYPES = { net = "table", strict_load = "boolean", filter_prefix = { "string", "table" },
  dec_key = "string", dec_mode = "string", specify_prefix = { "string", "table" }, choice_func = "function",
  crc_check = "boolean", format = "string", on_unknown_dtype = "string" }
for k, v in pairs(LPIN_TYPES) do LOAD_TYPES[k] = v end
-- save_checkpoint(save_obj, ckpt_file_name, integrated_save=True, async_save=False,
-- append_dict=None, enc_key=None, enc_mode="AES-GCM", choice_func=None, crc_check=False,
-- format="ckpt", **kwargs: incremental, global_step_num, remove_redundancy)
local SAVE_KEYS = { "integrated_save", "async_save", "append_dict", "enc_key", "enc_mode", "choice_func", "crc_check",
  "format", "_slice" }
local SAVE_REFUSED = {
  incremental = "incremental MapParameter saving is not implemented (spore has no MapParameter)",
  global_step_num = "the global_step_num kwarg (encrypted/parallel saving of a step number) is not implemented",
  remove_redundancy = "parallel redundancy removal is not implemented",
}
local SAVE_TYPES = { integrated_save = "boolean", async_save = "boolean", append_dict = "table", enc_key = "string",
  enc_mode = "string", choice_func = "function", crc_check = "boolean", format = "string" }
local FORMATS = { ckpt = true, safetensors = true }

--- MindSpore's warning (train/serialization.py) when parameters of the net were not loaded;
-- replace spore.ckpt.warn to capture it, or pass warn = false / a function to one call.
function M.warn(msg) io.stderr:write("[WARNING] " .. msg .. "\n") end

-- Python's repr of a list of names: ['a', 'b']
local function py_list(names)
  local q = {}
  for i, n in ipairs(names) do q[i] = "'" .. tostring(n):gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end
  return "[" .. table.concat(q, ", ") .. "]"
end
M._py_list = py_list
M.Report = Report
M.rules = require("spore.ckpt.rules")

---------------------------------------------------------------- ordered dicts
-- Not a spore.class on purpose: a dict is a name → tensor map, and a class's own fields
-- (new, super, __name) would read as entries; only keys/pairs are visible through it.
local Dict = {}
local ORDER = setmetatable({}, { __mode = "k" })

--- Ordered array of a dict's names.
function M.keys(d)
  if type(d) ~= "table" then error("ckpt.keys: expected a parameter dict, got " .. type(d), 2) end
  local order, seen, out = ORDER[d] or {}, {}, {}
  for _, k in ipairs(order) do
    if rawget(d, k) ~= nil and not seen[k] then out[#out + 1] = k; seen[k] = true end
  end
  local extra = {}
  for k in pairs(d) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(extra) do out[#out + 1] = k end
  return out
end

--- Ordered iterator: `for name, value in ckpt.pairs(dict)`.
function M.pairs(d)
  local ks, i = M.keys(d), 0
  return function()
    i = i + 1
    local k = ks[i]
    if k ~= nil then return k, rawget(d, k) end
  end
end

Dict.__index = { keys = M.keys, pairs = M.pairs }

--- New ordered dict from an array of {name, value} pairs.
function M.dict(list)
  local d, order = setmetatable({}, Dict), {}
  for _, kv in ipairs(list or {}) do
    if rawget(d, kv[1]) == nil then order[#order + 1] = kv[1] end
    rawset(d, kv[1], kv[2])
  end
  ORDER[d] = order
  return d
end

---------------------------------------------------------------- str (UTF-32LE)
local function utf32_decode(b)
  local out = {}
  for i = 1, #b - 3, 4 do
    local c0, c1, c2, c3 = b:byte(i, i + 3)
    local cp = c0 + c1 * 256 + c2 * 65536 + c3 * 16777216
    if cp < 0x80 then out[#out + 1] = string.char(cp)
    elseif cp < 0x800 then out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
    elseif cp < 0x10000 then
      out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    else
      out[#out + 1] = string.char(0xF0 + math.floor(cp / 262144) % 8, 0x80 + math.floor(cp / 4096) % 64,
        0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
  end
  return table.concat(out)
end
M.utf32_decode = utf32_decode

local function utf32_encode(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local cp, len
    if c < 0x80 then cp, len = c, 1
    elseif c >= 0xF0 then cp, len = c % 8, 4
    elseif c >= 0xE0 then cp, len = c % 16, 3
    elseif c >= 0xC0 then cp, len = c % 32, 2
    else error("save_checkpoint: append_dict string is not valid UTF-8", 0) end
    for k = 1, len - 1 do
      local cc = s:byte(i + k)
      if not cc or cc < 0x80 or cc >= 0xC0 then error("save_checkpoint: append_dict string is not valid UTF-8", 0) end
      cp = cp * 64 + cc % 64
    end
    out[#out + 1] = string.char(cp % 256, math.floor(cp / 256) % 256, math.floor(cp / 65536) % 256, 0)
    i = i + len
  end
  return table.concat(out)
end
M.utf32_encode = utf32_encode

---------------------------------------------------------------- loading
local OPAQUE = { maptensor = true }
local OPAQUE_TAGS = { random_op = true }

-- A caller's positional arguments past the options table (MindSpore's strict_load, ...) go
-- in the table by name: an extra one is an error, never dropped.
local function no_extra(who, n, form)
  if n > 0 then
    error(("%s takes %s: MindSpore's further positional arguments go in the options table by name"):format(who, form), 3)
  end
end

--- load_checkpoint(path, opts) -> dict[, report]
-- opts (MindSpore's names; a network in place of opts means {net = it}, MindSpore's
-- positional net): net, strict_load, filter_prefix (str|list), specify_prefix
-- (str|list), choice_func(name)->bool (only when both prefixes are nil), crc_check,
-- dec_key (string), dec_mode ("AES-GCM"|"AES-CBC"|"SM4-CBC"), format ("ckpt"|
-- "safetensors"|"pth"; detected from content when nil: zip magic "PK\3\4" -> PyTorch .pth,
-- safetensors header, else .ckpt). .pth: tensors keep torch's names and dtypes (use
-- rename = ckpt.rules.torch_to_mindspore(dict) for MindSpore names); a nested dict is
-- flattened one level ("state_dict.conv.weight": load_param_into_net's prefix fallback
-- finds it); Python ints/floats/bools are 0-d int64/float64/bool tensors; other values
-- (strings, None, lists) are skipped (report.unknown, type "pickle:<kind>"). spore's own: on_unknown_dtype
-- ("error" default | "skip"), plus load_param_into_net's options when net is given.
-- Returns the ordered dict (see ckpt.keys); with net, also loads it and returns the report.
-- Errors: one line naming the file and, where known, the tensor.
function M.load_checkpoint(path, opts, ...)
  no_extra("load_checkpoint", select("#", ...), "(path, {net =, strict_load =, ...})")
  -- MindSpore's load_checkpoint(file, net): a network in second place is the net option
  if type(opts) == "table" and getmetatable(opts) ~= nil and type(opts.parameters_and_names) == "function" then
    opts = { net = opts }
  end
  opts = opts_check("load_checkpoint", opts, LOAD_KEYS, LPIN_REFUSED, LOAD_TYPES)
  if opts.format ~= nil and opts.format ~= "ckpt" and opts.format ~= "safetensors" and opts.format ~= "pth" then
    error("load_checkpoint: option 'format' must be \"ckpt\", \"safetensors\" or \"pth\", got \"" .. opts.format .. "\"", 2)
  end
  if type(path) ~= "string" then error("load_checkpoint: path must be a string, got " .. type(path), 2) end
  local res = B.read(path, { format = opts.format, crc_check = opts.crc_check, dec_key = opts.dec_key,
    dec_mode = opts.dec_mode })
  local keep = P.filter(opts)
  local list, skipped = {}, {}
  for _, e in ipairs(res.entries) do
    if keep(e.name) then
      if e.tensor then
        list[#list + 1] = { e.name, e.tensor }
      elseif e.type == "str" then
        list[#list + 1] = { e.name, utf32_decode(e.bytes) }
      elseif OPAQUE[e.type] or OPAQUE_TAGS[e.name] or e.type:match("^pickle:") or opts.on_unknown_dtype == "skip" then
        skipped[#skipped + 1] = { name = e.name, type = e.type }
      else
        error(string.format("file '%s': tensor '%s': unknown tensor_type '%s' (expected Float16/32/64, BFloat16, "
          .. "Int8..Int64, UInt8..UInt64, Bool or str; pass on_unknown_dtype=\"skip\" to skip it)",
          path, e.name, e.type), 0)
      end
    end
  end
  if #list == 0 then
    error(string.format("file '%s': no parameters left after specify_prefix/filter_prefix/choice_func "
      .. "(the file holds %d entries)", path, #res.entries), 0)
  end
  local d = M.dict(list)
  if opts.net then
    local o = {}
    for _, k in ipairs(LPIN_KEYS) do o[k] = opts[k] end
    local _, _, report = M.load_param_into_net(opts.net, d, o)
    report.unknown = skipped
    return d, report
  end
  return d
end

local function shape_of(t) return t:shape() end

--- load_param_into_net(net_or_optimizer, dict, opts) -> param_not_load, ckpt_not_load, report
-- A parameter loads iff its (renamed) name is a key: copied into param.data in place.
-- opts: strict_load (dtype casts become errors), rename = {{pattern, repl} | fn, ...}
-- applied in order to checkpoint keys, on_shape_mismatch = "error" (default, as
-- MindSpore) | "skip", on_dtype_mismatch = "error" | "skip", prefix_fallback (default true
-- unless strict_load), warn (default spore.ckpt.warn; false silences it, a function gets the
-- lines). MindSpore's remove_redundancy is refused by name; any other key is an error.
-- When a parameter of the net is not loaded, MindSpore's two warning lines are given, word
-- for word ("For 'load_param_into_net', N parameters in the 'net' are not loaded, ...").
-- Never loads optimizer state (moments.X, moment1.X, adam_m.X, ...) into a parameter X.
function M.load_param_into_net(net, dict, opts, ...)
  no_extra("load_param_into_net", select("#", ...), "(net, dict, {strict_load =, ...})")
  opts = opts_check("load_param_into_net", opts, LPIN_KEYS, LPIN_REFUSED, LPIN_TYPES)
  if type(net) ~= "table" or type(net.parameters_and_names) ~= "function" then
    error("load_param_into_net: expected a network or optimizer with parameters_and_names()", 2)
  end
  if type(dict) ~= "table" then error("load_param_into_net: expected a parameter dict", 2) end
  local report = Report.new()
  -- renamed view of the checkpoint
  local keys = M.keys(dict)
  local by_name, src_key, renamed_list = {}, {}, {}
  for _, k in ipairs(keys) do
    local nk = P.rename(k, opts.rename, dict)
    if nk == nil then
      report:add({ name = k, key = k, status = "dropped", reason = "dropped by a rename rule" })
    else
      if nk ~= k then report.renamed = report.renamed or {}; report.renamed[#report.renamed + 1] = { k, nk } end
      if src_key[nk] ~= nil then
        -- two keys onto one name: loading either would silently hide the other
        error(string.format("load_param_into_net: checkpoint keys '%s' and '%s' both map to '%s' after renaming "
          .. "(fix the rename rules so each name comes from one key)", src_key[nk], k, nk), 2)
      end
      renamed_list[#renamed_list + 1] = nk
      by_name[nk] = dict[k]
      src_key[nk] = k
    end
  end
  local params = net:parameters_and_names()
  local missing = {}
  for _, pn in ipairs(params) do
    if by_name[pn[1]] == nil then missing[#missing + 1] = pn[1] end
  end
  local prefix
  local fallback = opts.prefix_fallback
  if fallback == nil then fallback = not opts.strict_load end
  if fallback and #missing > 0 then
    prefix = P.find_prefix(missing, by_name, renamed_list)
    report.prefix = prefix
  end
  local used = {}
  local param_not_load = {}
  for _, pn in ipairs(params) do
    local name, param = pn[1], pn[2]
    local key = name
    local src = by_name[name]
    if src == nil and prefix and not P.is_state(prefix .. name) then
      key = prefix .. name
      src = by_name[key]
    end
    local held_by = rawget(param, "shard_owner")
    if held_by and param.data:numel() == 0 then
      -- optimizer state another rank holds (spore.dist shard_optimizer): that rank loads it
      if src ~= nil then used[key] = true end
      report:add({ name = name, key = src and src_key[key], status = "held_elsewhere",
        reason = "optimizer state held by rank " .. held_by })
    elseif src == nil then
      param_not_load[#param_not_load + 1] = name
      report:add({ name = name, status = "not_in_ckpt", net_shape = shape_of(param.data), to = param.data:dtype() })
    elseif type(src) ~= "table" or not T.is_tensor(src) then
      used[key] = true
      param_not_load[#param_not_load + 1] = name
      report:add({ name = name, key = src_key[key], status = "skipped", reason = "checkpoint value is not a tensor",
        net_shape = shape_of(param.data) })
    else
      used[key] = true
      local cs, ns = src:shape(), param.data:shape()
      local from, to = src:dtype(), param.data:dtype()
      local e = { name = name, key = src_key[key], from = from, to = to, ckpt_shape = cs, net_shape = ns }
      local rel = P.dtype_relation(from, to)
      if not P.shape_compatible(cs, ns) then
        e.reason = "shape mismatch"
        if opts.on_shape_mismatch == "skip" then
          e.status = "skipped"
        else
          error(string.format("load_param_into_net: parameter '%s': checkpoint shape %s (key '%s'), net shape %s "
            .. "(pass on_shape_mismatch=\"skip\" to skip it)", name, Report.shape_str(cs), e.key, Report.shape_str(ns)), 0)
        end
      elseif rel == "incompatible" or (rel == "cast" and opts.strict_load) then
        e.reason = rel == "incompatible" and "incompatible dtypes" or "dtype differs (strict_load)"
        if opts.on_dtype_mismatch == "skip" then
          e.status = "skipped"
        else
          error(string.format("load_param_into_net: parameter '%s': checkpoint dtype %s, net dtype %s (%s)",
            name, from, to, e.reason), 0)
        end
      else
        param.data:copy_(src)
        e.status = rel == "cast" and "cast" or "loaded"
      end
      if e.status == "skipped" then param_not_load[#param_not_load + 1] = name end
      report:add(e)
    end
  end
  local ckpt_not_load = {}
  for _, nk in ipairs(renamed_list) do
    if not used[nk] then
      ckpt_not_load[#ckpt_not_load + 1] = src_key[nk]
      report:add({ name = src_key[nk], key = src_key[nk], status = "not_in_net" })
    end
  end
  report.param_not_load, report.ckpt_not_load = param_not_load, ckpt_not_load
  -- MindSpore's warning, word for word (logger.warning in load_param_into_net), whenever a
  -- parameter of the net was not loaded: nothing at all, or most of the net, never passes unseen
  if #param_not_load > 0 and opts.warn ~= false then
    local w = type(opts.warn) == "function" and opts.warn or M.warn
    w(("For 'load_param_into_net', %d parameters in the 'net' are not loaded, because they are not in the "
      .. "'parameter_dict', please check whether the network structure is consistent when training and "
      .. "loading checkpoint."):format(#param_not_load))
    w(("%s are not loaded."):format(py_list(param_not_load)))
  end
  return param_not_load, ckpt_not_load, report
end

---------------------------------------------------------------- saving
local function append_item(name, v)
  if T.is_tensor(v) then return { name = name, tensor = v } end
  if type(v) == "boolean" then return { name = name, tensor = T.from_table(v and 1 or 0, "bool") } end
  if type(v) == "number" then
    if v == math.floor(v) and v >= -2^63 and v < 2^63 then
      local t = T.zeros({}, "int64")
      t:set({}, v)
      return { name = name, tensor = t }
    end
    return { name = name, tensor = T.from_table(v, "float32") }
  end
  if type(v) == "string" then return { name = name, type = "str", shape = { 0 }, bytes = utf32_encode(v) } end
  error("save_checkpoint: append_dict['" .. tostring(name) .. "'] has unsupported type " .. type(v), 0)
end

local function items_of(obj)
  local items = {}
  if type(obj) == "table" and type(obj.parameters_and_names) == "function" then
    for _, pn in ipairs(obj:parameters_and_names()) do
      local o = rawget(pn[2], "shard_owner")
      if o and pn[2].data:numel() == 0 then
        error(("save_checkpoint: '%s' is optimizer state held by rank %d (spore.dist shard_optimizer): "
          .. "ModelCheckpoint writes sharded checkpoints, spore.ckpt.merge joins them"):format(pn[1], o), 0)
      end
      items[#items + 1] = { name = pn[1], tensor = pn[2].data }
    end
  elseif type(obj) == "table" and obj[1] ~= nil then
    for i, it in ipairs(obj) do
      local name, data = it.name or it[1], it.data or it[2]
      if type(name) ~= "string" then error("save_checkpoint: list item " .. i .. " has no name", 0) end
      if type(data) == "table" and not T.is_tensor(data) and data.data then data = data.data end
      items[#items + 1] = append_item(name, data)
    end
  elseif type(obj) == "table" then
    for _, k in ipairs(M.keys(obj)) do
      local v = obj[k]
      if type(v) == "table" and not T.is_tensor(v) and v.data then v = v.data end
      items[#items + 1] = append_item(k, v)
    end
  else
    error("save_checkpoint: expected a net, a list of {name=, data=} or a dict, got " .. type(obj), 0)
  end
  return items
end

-- Names the writer cannot store faithfully are refused before anything is opened: the
-- engine takes C strings (a NUL would cut the name short), a name must be unique (MindSpore's
-- loader keeps the first of two, spore's engine refuses them), and a checkpoint with no
-- entries is refused (spore, like MindSpore, cannot load one).
local function check_items(who, path, items)
  if #items == 0 then
    error(who .. ": nothing to save to '" .. path .. "': no entries (an empty checkpoint cannot be loaded)", 0)
  end
  local seen = {}
  for i, it in ipairs(items) do
    local name = it.name
    if type(name) ~= "string" then
      error(who .. ": item " .. i .. " for '" .. path .. "' has no string name (got " .. type(name) .. ")", 0)
    end
    if name:find("\0", 1, true) then
      error(string.format("%s: tensor name %q for '%s' contains a NUL byte", who, name, path), 0)
    end
    if seen[name] then error(who .. ": tensor '" .. name .. "' appears twice in '" .. path .. "'", 0) end
    seen[name] = true
  end
end

--- save_checkpoint(obj, path, opts) -> path written
-- obj: a net/optimizer (parameters_and_names order), a list of {name=, data=}, or a
-- dict (ckpt.keys order). opts: append_dict (table; an array of {name, value} keeps
-- order, a map is written in sorted key order; integers -> Int64, other numbers ->
-- Float32, strings -> "str", booleans -> Bool, tensors as they are), choice_func(name),
-- crc_check, enc_key, enc_mode, format ("ckpt" default | "safetensors"; inferred from a
-- ".safetensors" path). ".ckpt" (or ".safetensors") is appended when missing, as MindSpore does.
function M.save_checkpoint(obj, path, opts, ...)
  no_extra("save_checkpoint", select("#", ...), "(obj, path, {enc_key =, format =, ...})")
  opts = opts_check("save_checkpoint", opts, SAVE_KEYS, SAVE_REFUSED, SAVE_TYPES)
  if type(path) ~= "string" or path == "" then error("save_checkpoint: path must be a non-empty string", 2) end
  if opts.format ~= nil and not FORMATS[opts.format] then
    error("save_checkpoint: option 'format' must be \"ckpt\" or \"safetensors\", got \"" .. tostring(opts.format) .. "\"", 2)
  end
  local format = opts.format
  if not format then format = path:match("%.safetensors$") and "safetensors" or "ckpt" end
  local ext = format == "safetensors" and ".safetensors" or ".ckpt"
  if path:sub(-#ext) ~= ext then path = path .. ext end
  local items = items_of(obj)
  local ad = opts.append_dict
  if ad then
    if ad[1] ~= nil then
      for _, kv in ipairs(ad) do items[#items + 1] = append_item(kv[1], kv[2]) end
    else
      local ks = {}
      for k in pairs(ad) do ks[#ks + 1] = k end
      table.sort(ks)
      for _, k in ipairs(ks) do items[#items + 1] = append_item(k, ad[k]) end
    end
  end
  if opts.choice_func then
    local kept = {}
    for _, it in ipairs(items) do if opts.choice_func(it.name) then kept[#kept + 1] = it end end
    items = kept
  end
  check_items("save_checkpoint", path, items)
  return B.write(path, items, { format = format, crc_check = opts.crc_check, enc_key = opts.enc_key,
    enc_mode = opts.enc_mode, slice = opts._slice })
end

--- spore.ckpt.merge(index[, out]) — one ordinary checkpoint from a sharded one (spore.ckpt.merge).
function M.merge(index, out) return require("spore.ckpt.merge").merge(index, out) end

--- Return memory the .ckpt reader keeps for reuse (freed tensors' blocks, up to
-- 256 MiB or $SPORE_CKPT_CACHE_MB) to the system. Returns the bytes freed.
function M.release_cache() return B.release_cache() end

--- Low-level access for tools: the engine's view of a file (entries, crc, metadata).
function M.read_raw(path, opts)
  opts = opts_check("ckpt.read_raw", opts, { "format", "crc_check", "dec_key", "dec_mode", "lazy" }, nil,
    { format = "string", crc_check = "boolean", dec_key = "string", dec_mode = "string", lazy = "boolean" })
  return B.read(path, opts)
end
function M.write_raw(path, items, opts)
  opts = opts_check("ckpt.write_raw", opts, { "format", "crc_check", "enc_key", "enc_mode", "slice", "on_item" }, nil,
    { format = "string", crc_check = "boolean", enc_key = "string", enc_mode = "string", on_item = "function" })
  check_items("write_raw", tostring(path), items)
  return B.write(path, items, opts)
end

return M
