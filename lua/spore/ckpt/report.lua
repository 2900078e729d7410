--- spore.ckpt.report — the load report: one entry per tensor, in order.
-- entry = { name = <net name or ckpt key>, key = <ckpt key>, status = "loaded" | "cast" |
--   "skipped" | "not_in_ckpt" | "not_in_net" | "dropped" | "held_elsewhere" (optimizer state
--   another rank holds under spore.dist's shard_optimizer), from = dtype, to = dtype,
--   reason = text, ckpt_shape = {..}, net_shape = {..} }
local class = require("spore.class")

local R = class("Report")

function R:__init() self.entries, self.loaded, self.cast, self.skipped, self.prefix = {}, {}, {}, {}, nil end

function R:add(e)
  self.entries[#self.entries + 1] = e
  if e.status == "loaded" or e.status == "cast" then self.loaded[#self.loaded + 1] = e.name end
  if e.status == "cast" then self.cast[#self.cast + 1] = e end
  if e.status == "skipped" then self.skipped[#self.skipped + 1] = e end
  return e
end

local function shp(s) return s and ("[" .. table.concat(s, ",") .. "]") or "?" end
R.shape_str = shp

--- Counts by status.
function R:counts()
  local c = {}
  for _, e in ipairs(self.entries) do c[e.status] = (c[e.status] or 0) + 1 end
  return c
end

--- Multi-line human summary.
function R:summary()
  local lines = {}
  local c = self:counts()
  lines[1] = string.format("loaded %d (cast %d), skipped %d, not in checkpoint %d, not in net %d",
    #self.loaded, #self.cast, #self.skipped, c.not_in_ckpt or 0, c.not_in_net or 0)
  if c.held_elsewhere then
    lines[1] = lines[1] .. (", held by other ranks %d (spore.dist shard_optimizer)"):format(c.held_elsewhere)
  end
  if self.prefix then lines[#lines + 1] = "  prefix fallback: '" .. self.prefix .. "'" end
  for _, e in ipairs(self.entries) do
    if e.status == "cast" then
      lines[#lines + 1] = string.format("  cast    %s: %s -> %s", e.name, e.from, e.to)
    elseif e.status == "skipped" then
      lines[#lines + 1] = string.format("  skipped %s: %s (checkpoint %s %s, net %s %s)", e.name, e.reason,
        e.from or "?", shp(e.ckpt_shape), e.to or "?", shp(e.net_shape))
    end
  end
  return table.concat(lines, "\n")
end
R.__tostring = R.summary

return R
