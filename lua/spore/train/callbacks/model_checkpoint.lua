--- spore.train.ModelCheckpoint — MindSpore's checkpoint callback.
-- ModelCheckpoint(prefix="CKP", directory=".", config=CheckpointConfig{}, opts{saver=})
-- Saves "<prefix>-<epoch>_<step_in_epoch>.ckpt" every save_checkpoint_steps steps
-- and once more at the end (unless that step was just saved), the network AND
-- optimizer state (the optimizer is saved when there is one: its
-- parameters_and_names() includes the network weights). An existing
-- "<prefix>-*.ckpt" makes the prefix "<prefix>_N"; only the newest
-- keep_checkpoint_max files (by mtime) are kept, older ones deleted only after the
-- new file is complete. saver(obj, path, {append_dict=})
-- defaults to require("spore").save_checkpoint. Fields after training:
-- .prefix (the one used), .saved (paths, in order), .latest (last path).
-- Non-finite weights are not saved: a NaN or Inf in any saved tensor is an error naming
-- the file, the step and the parameter, unless training runs with allow_nonfinite = true
-- (ctx.allow_nonfinite) or the callback was made with opts.allow_nonfinite = true.
local class = require("spore.class")
local CheckpointConfig = require("spore.train.callbacks.checkpoint_config")

local ModelCheckpoint = class("ModelCheckpoint")

-- the aggregator requires this file: reach its helpers (unique_prefix, training_state, the
-- directory helpers) at call time, not load time
local function cbs() return require("spore.train.callbacks") end

function ModelCheckpoint:__init(prefix, directory, config, opts)
  if type(prefix) == "table" and directory == nil then -- ModelCheckpoint{prefix=, directory=, config=}
    local t = prefix
    prefix, directory, config, opts = t.prefix, t.directory, t.config, t
  end
  prefix = prefix or "CKP"
  if type(prefix) ~= "string" or prefix:find("/") or prefix == "" then
    error("ModelCheckpoint: prefix must be a non-empty file name prefix (no '/'), got " .. tostring(prefix), 3)
  end
  config = config or CheckpointConfig()
  if not config.__config then config = CheckpointConfig(config) end
  local saver = (opts and opts.saver) or config.saver
  self.allow_nonfinite = (opts and opts.allow_nonfinite) == true
  directory = directory or "."
  -- as MindSpore: the directory is made and the prefix chosen when the callback is built
  cbs().mkdir_p(directory)
  self.base_prefix, self.prefix, self.directory = prefix, cbs().unique_prefix(directory, prefix), directory
  self.config, self.saver, self.saved, self._seq, self._last_triggered, self._owned = config, saver, {}, 0, 0, {}
end

-- Saves are counted from the step training starts at, so a resumed run
-- (initial_epoch) keeps saving on the same step boundaries.
function ModelCheckpoint:on_train_begin(ctx)
  self._last_triggered = ctx.cur_step_num
end

-- files "<prefix>-*.ckpt" in the directory, oldest first (mtime, then save order)
function ModelCheckpoint:_files()
  local out = {}
  local pre = self.prefix .. "-"
  for _, f in ipairs(cbs().list_dir(self.directory)) do
    local p = self.directory .. "/" .. f
    if f:sub(1, #pre) == pre and f:sub(-5) == ".ckpt" and not f:sub(#pre, -6):find("%a") and cbs().is_file(p) then
      out[#out + 1] = { path = p, mtime = cbs().mtime(p), seq = self._owned[p] or 0 }
    end
  end
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime < b.mtime end
    if a.seq ~= b.seq then return a.seq < b.seq end
    return a.path < b.path
  end)
  return out
end

function ModelCheckpoint:_save(ctx)
  local step = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  local name = string.format("%s-%d_%d.ckpt", self.prefix, ctx.cur_epoch_num, step)
  local path = self.directory .. "/" .. name
  local append
  for _, k in ipairs(self.config.append_info or {}) do
    append = append or {}
    if k == "epoch_num" then append.epoch_num = ctx.cur_epoch_num
    elseif k == "step_num" then append.step_num = ctx.cur_step_num
    elseif type(k) == "table" then for kk, v in pairs(k) do append[kk] = v end
    else error("ModelCheckpoint: unknown append_info entry '" .. tostring(k) .. "'", 0) end
  end
  local obj = cbs().training_state(ctx.train_network, ctx.optimizer)
  if not (ctx.allow_nonfinite or self.allow_nonfinite) then
    -- one engine sum per tensor: NaN or Inf anywhere makes it non-finite
    for _, kv in ipairs(obj) do
      local d = kv[2].data
      if type(d) == "table" and d.numel and d:numel() > 0 and d:dtype():match("float") then
        local v = d:sum()
        if v ~= v or v == math.huge or v == -math.huge then
          error(("ModelCheckpoint: not saving %s: parameter '%s' is not finite (step %d)")
            :format(path, kv[1], ctx.cur_step_num), 0)
        end
      end
    end
  end
  local saver = self.saver or function(o, p, so) return require("spore").save_checkpoint(o, p, so) end
  -- Save first: old files go only once the new one is complete (save_checkpoint writes
  -- a unique temp file and renames it), so a failed or killed save never leaves no checkpoint.
  saver(obj, path, { append_dict = append })
  self._seq = self._seq + 1
  self._owned[path] = self._seq
  self.saved[#self.saved + 1] = path
  self.latest = path
  self._last_triggered = ctx.cur_step_num
  self:_prune(path)
end

-- Keep the newest keep_checkpoint_max files "<prefix>-*.ckpt" (newest included).
function ModelCheckpoint:_prune(newest)
  local keep = self.config.keep_checkpoint_max
  if not keep or keep <= 0 then return end
  local old = {}
  for _, f in ipairs(self:_files()) do if f.path ~= newest then old[#old + 1] = f.path end end
  for i = 1, #old - (keep - 1) do os.remove(old[i]) end
end

function ModelCheckpoint:on_train_step_end(ctx)
  local n = self.config.save_checkpoint_steps
  if n and n >= 1 and ctx.cur_step_num - self._last_triggered >= n then self:_save(ctx) end
end

function ModelCheckpoint:on_train_end(ctx)
  if ctx.cur_step_num ~= self._last_triggered then self:_save(ctx) end
end

return ModelCheckpoint
