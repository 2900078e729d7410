--- spore.ckpt.merge — sharded checkpoints (spore.dist with shard_optimizer = true) and their
-- merge into one ordinary checkpoint.
--
-- A sharded checkpoint is a directory "<stem>.shards/" holding one ordinary checkpoint per
-- rank, "rank<r>.ckpt" (rank 0: the network, the optimizer's scalars, the appended info and
-- its share of the per-parameter state; rank r > 0: its share of the per-parameter state),
-- and "index.json", written by rank 0 last, once every rank's file is complete:
--   {"format": "spore-sharded-checkpoint", "version": 1, "world_size": 2,
--    "files": ["rank0.ckpt", "rank1.ckpt"], "names": [every entry, in checkpoint order],
--    "owner": {"moments.fc1.weight": 1, ...}}   (entries not in owner: rank 0)
--   merge.merge(index[, out]) → out: one ordinary checkpoint, the entries in "names" order
--     (out defaults to "<stem>.ckpt" next to the shards directory)
--   merge.load(index) → the ordered dict spore.load_checkpoint would return for the merged file
--   merge.is_index(path) → true for a sharded checkpoint's index (or its directory)
local ckpt = require("spore.ckpt")
local json = require("spore.json")

local M = {}

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("spore.ckpt.merge: cannot read '" .. path .. "': " .. tostring(err), 0) end
  local s = f:read("*a")
  f:close()
  return s
end

-- index path → (index table, its directory)
local function resolve(path)
  if type(path) ~= "string" or path == "" then error("spore.ckpt.merge: index must be a path, got " .. type(path), 3) end
  if path:match("%.shards/?$") then path = path:gsub("/?$", "/index.json") end
  local ok, idx = pcall(json.decode, read_file(path))
  if not ok or type(idx) ~= "table" or idx.format ~= "spore-sharded-checkpoint" then
    error("spore.ckpt.merge: '" .. path .. "' is not a sharded checkpoint index (expected the JSON \"index.json\" "
      .. "of a <stem>.shards directory, format \"spore-sharded-checkpoint\")", 0)
  end
  if idx.version ~= 1 then error("spore.ckpt.merge: '" .. path .. "': index version " .. tostring(idx.version) .. ", expected 1", 0) end
  for _, k in ipairs({ "files", "names" }) do
    if type(idx[k]) ~= "table" or #idx[k] == 0 then error("spore.ckpt.merge: '" .. path .. "': '" .. k .. "' is missing or empty", 0) end
  end
  return idx, path:match("^(.*)/[^/]*$") or "."
end

function M.is_index(path)
  if type(path) ~= "string" then return false end
  return path:match("%.shards/?$") ~= nil or path:match("%.shards/index%.json$") ~= nil
end

--- The ordered dict of a sharded checkpoint: every file read, every entry of the index
-- present exactly once (an error names a missing or doubled one).
function M.load(path)
  local idx, dir = resolve(path)
  local have, marker = {}, {}
  for _, m in ipairs(idx.markers or {}) do marker[m] = true end
  for _, f in ipairs(idx.files) do
    local p = dir .. "/" .. f
    local d = ckpt.load_checkpoint(p)
    for _, k in ipairs(ckpt.keys(d)) do
      if marker[k] then goto continue end
      if have[k] ~= nil then error(("spore.ckpt.merge: entry '%s' is in two shards (%s and %s)"):format(k, have[k].file, p), 0) end
      have[k] = { value = d[k], file = p }
      ::continue::
    end
  end
  local list = {}
  for _, n in ipairs(idx.names) do
    local e = have[n]
    if not e then
      error(("spore.ckpt.merge: entry '%s' of %s/index.json is in no shard (a shard of rank %s is missing or "
        .. "incomplete)"):format(n, dir, tostring((idx.owner or {})[n] or 0)), 0)
    end
    list[#list + 1] = { n, e.value }
    have[n] = nil
  end
  local extra = next(have)
  if extra then error(("spore.ckpt.merge: entry '%s' (%s) is not in the index"):format(extra, have[extra].file), 0) end
  return ckpt.dict(list), idx
end

--- Write one ordinary checkpoint holding every entry of the sharded one; returns its path.
function M.merge(path, out)
  local d, _ = M.load(path)
  if out == nil then
    local _, dir = resolve(path)
    out = dir:gsub("%.shards$", "") .. ".ckpt"
  end
  local list = {}
  for _, k in ipairs(ckpt.keys(d)) do list[#list + 1] = { name = k, data = d[k] } end
  return ckpt.save_checkpoint(list, out)
end

return M
