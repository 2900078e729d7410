--- spore.train.ModelCheckpoint — MindSpore 2.10's checkpoint callback.
-- ModelCheckpoint(prefix="CKP", directory=".", config=CheckpointConfig{}[, opts{saver=, allow_nonfinite=}])
-- (or ModelCheckpoint{prefix=, directory=, config=}). As MindSpore's:
--   * saves "<prefix>-<epoch>_<step_in_epoch>.<format>" when cur_step_num >= last saved step +
--     save_checkpoint_steps (or, with save_checkpoint_steps = 0, every save_checkpoint_seconds),
--     and once more at the end unless that step was just saved; the last saved step is kept
--     across train() calls on the same callback, as MindSpore's;
--   * what it saves is ctx.train_network (Model's TrainOneStepCell: network with BN statistics,
--     then optimizer state, in MindSpore's order), or config.saved_network;
--   * append_info: before each save append_dict.epoch_num = E0 + cur_epoch_num and
--     append_dict.step_num = S0 + cur_step_num, where E0/S0 are the dict form's initial values
--     (0 for the names); the file gets append_dict after the parameters;
--   * enc_key/enc_mode, crc_check and format go to save_checkpoint (an encrypted file MindSpore
--     reads with dec_key);
--   * keep_checkpoint_max: only the newest N "<prefix>-*.<format>" files (by mtime) are kept;
--     with keep_checkpoint_per_n_minutes, of the files written within the last N minutes only
--     the oldest is kept when a save comes sooner than N minutes after the previous one;
--   * an existing "<prefix>-*" file makes the prefix "<prefix>_N" (chosen when the callback is made);
--   * exception_save: when training raises, "<prefix>-<epoch>_<step>_breakpoint.ckpt" is written
--     (Model:train calls _exception_save) and the error goes on.
-- spore differs: the new file is complete before old ones are deleted (MindSpore deletes first),
-- so a failed or killed save never leaves no checkpoint.
-- Fields after training: .prefix (the one used), .saved (paths, in order), .latest (last path),
-- .latest_ckpt_file_name (MindSpore's name for it).
-- Non-finite weights are not saved: a NaN or Inf in any saved tensor is an error naming
-- the file, the step and the parameter, unless training runs with allow_nonfinite = true
-- (ctx.allow_nonfinite) or the callback was made with opts.allow_nonfinite = true.
local class = require("spore.class")
local optcheck = require("spore.opts")
local B = require("ffi.data")
local CheckpointConfig = require("spore.train.callbacks.checkpoint_config")

local ModelCheckpoint = class("ModelCheckpoint")

-- the aggregator requires this file: reach its helpers (unique_prefix, training_state, the
-- directory helpers) at call time, not load time
local function cbs() return require("spore.train.callbacks") end

function ModelCheckpoint:__init(prefix, directory, config, opts)
  if type(prefix) == "table" and directory == nil then -- ModelCheckpoint{prefix=, directory=, config=}
    local t = optcheck.check("ModelCheckpoint", prefix, { "prefix", "directory", "config", "saver", "allow_nonfinite" },
      nil, { prefix = "string", directory = "string", config = "table", saver = "function", allow_nonfinite = "boolean" }, 4)
    prefix, directory, config, opts = t.prefix, t.directory, t.config, t
  elseif opts ~= nil then
    optcheck.check("ModelCheckpoint", opts, { "saver", "allow_nonfinite" }, nil,
      { saver = "function", allow_nonfinite = "boolean" }, 4)
  end
  prefix = prefix or "CKP"
  if type(prefix) == "function" or type(directory) == "function" then
    error("ModelCheckpoint: a callable prefix or directory is MindSpore's, but spore does not implement it "
      .. "(pass strings)", 3)
  end
  if type(prefix) ~= "string" or prefix:find("/") or prefix == "" then
    error("ModelCheckpoint: prefix must be a non-empty file name prefix (no '/'), got " .. tostring(prefix), 3)
  end
  if directory ~= nil and type(directory) ~= "string" then
    error("ModelCheckpoint: directory must be a string, got " .. type(directory), 3)
  end
  config = config or CheckpointConfig()
  if type(config) ~= "table" then error("ModelCheckpoint: config must be a CheckpointConfig, got " .. type(config), 3) end
  if not config.__config then config = CheckpointConfig(config) end
  local saver = (opts and opts.saver) or config.saver
  self.allow_nonfinite = (opts and opts.allow_nonfinite) == true
  directory = directory or "."
  -- as MindSpore: the directory is made and the prefix chosen when the callback is built
  cbs().mkdir_p(directory)
  self.base_prefix, self.prefix, self.directory = prefix, cbs().unique_prefix(directory, prefix), directory
  self.config, self.saver, self.saved, self._seq, self._last_triggered, self._owned = config, saver, {}, 0, 0, {}
  -- MindSpore's _append_dict: the config's own dict (so config.append_dict shows the values
  -- last saved, as MindSpore's), and its starting values
  self._append_order = config._append and config._append.order or {}
  self.append_dict = config.append_dict or {}
  local ae, as = self.append_dict.epoch_num, self.append_dict.step_num
  self._append_epoch_num = type(ae) == "number" and ae or (ae ~= nil and require("spore.tensor").is_tensor(ae) and ae:item()) or 0
  self._append_step_num = type(as) == "number" and as or (as ~= nil and require("spore.tensor").is_tensor(as) and as:item()) or 0
  local now = B.now()
  self._last_time, self._last_time_for_keep = now, now
  self.latest_ckpt_file_name = ""
end

-- files "<prefix>-*.<format>" in the directory, oldest first (mtime, then save order)
function ModelCheckpoint:_files()
  local out = {}
  local pre = self.prefix .. "-"
  local ext = "." .. self.config.format
  for _, f in ipairs(cbs().list_dir(self.directory)) do
    local p = self.directory .. "/" .. f
    if f:sub(1, #pre) == pre and f:sub(-#ext) == ext and not f:sub(#pre, -#ext - 1):find("%a") and cbs().is_file(p) then
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

-- append_dict for save_checkpoint: an ordered list of {name, value} pairs (the order it is
-- written in), whose names also index the values (list.step_num), or nil
function ModelCheckpoint:_append_list()
  if #self._append_order == 0 then return nil end
  local list = {}
  for _, k in ipairs(self._append_order) do
    list[#list + 1] = { k, self.append_dict[k] }
    list[k] = self.append_dict[k]
  end
  return list
end

function ModelCheckpoint:_check_finite(ctx, obj, path)
  if ctx.allow_nonfinite or self.allow_nonfinite then return end
  -- one engine sum per tensor: NaN or Inf anywhere makes it non-finite
  for _, kv in ipairs(obj:parameters_and_names()) do
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

-- what is saved: config.saved_network, else the training network (network + optimizer state)
function ModelCheckpoint:_network(ctx)
  local net = self.config.saved_network or ctx.train_network
  if type(net) ~= "table" or type(net.parameters_and_names) ~= "function" then
    -- a ctx built by hand (tests): the network and the optimizer in MindSpore's order
    net = require("spore.train.model").TrainNetwork(ctx.network, ctx.optimizer)
  end
  return net
end

function ModelCheckpoint:_write(net, path, with_options)
  local cfg = self.config
  local saver = self.saver or function(o, p, so) return require("spore").save_checkpoint(o, p, so) end
  local so = { append_dict = self:_append_list() }
  if with_options then so.crc_check, so.format = cfg.crc_check or nil, cfg.format end
  if cfg.enc_key then so.enc_key, so.enc_mode = cfg.enc_key, cfg.enc_mode end
  return saver(net, path, so)
end

function ModelCheckpoint:_check_save(ctx, force)
  local cfg = self.config
  if cfg.save_checkpoint_steps and cfg.save_checkpoint_steps > 0 then
    return ctx.cur_step_num >= self._last_triggered + cfg.save_checkpoint_steps or force
  elseif cfg.save_checkpoint_seconds and cfg.save_checkpoint_seconds > 0 then
    local now = B.now()
    if now - self._last_time > cfg.save_checkpoint_seconds or force then
      self._last_time = now
      return true
    end
  end
  return false
end

-- MindSpore's keep_one_ckpoint_per_minutes: of the files modified within the last n minutes,
-- only the oldest stays
function ModelCheckpoint:_keep_per_minutes(minutes, now)
  -- (mtimes have whole seconds here: the oldest is the first of the sorted files, not one
  -- strictly older than now)
  local recent, oldest, ot = {}, nil, math.huge
  for _, f in ipairs(self:_files()) do
    if now - f.mtime < 60 * minutes then
      recent[#recent + 1] = f.path
      if f.mtime < ot then ot, oldest = f.mtime, f.path end
    end
  end
  for _, p in ipairs(recent) do if p ~= oldest then os.remove(p) end end
end

function ModelCheckpoint:_save(ctx, force)
  if ctx.cur_step_num == self._last_triggered then return end
  if not self:_check_save(ctx, force) then return end
  local cfg = self.config
  local step = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  local name = string.format("%s-%d_%d.%s", self.prefix, ctx.cur_epoch_num, step, cfg.format)
  local path = self.directory .. "/" .. name
  if not cfg.keep_checkpoint_max or cfg.keep_checkpoint_max <= 0 then
    local n = cfg.keep_checkpoint_per_n_minutes
    if n and n > 0 then
      local now = os.time()
      if B.now() - self._last_time_for_keep < n * 60 then self:_keep_per_minutes(n, now) end
    end
  end
  self._last_time_for_keep = B.now()
  self._last_triggered = ctx.cur_step_num
  if self.append_dict.epoch_num ~= nil then self.append_dict.epoch_num = self._append_epoch_num + ctx.cur_epoch_num end
  if self.append_dict.step_num ~= nil then self.append_dict.step_num = self._append_step_num + ctx.cur_step_num end
  local net = self:_network(ctx)
  self:_check_finite(ctx, net, path)
  -- Save first: old files go only once the new one is complete (save_checkpoint writes
  -- a unique temp file and renames it), so a failed or killed save never leaves no checkpoint.
  self:_write(net, path, true)
  self._seq = self._seq + 1
  self._owned[path] = self._seq
  self.saved[#self.saved + 1] = path
  self.latest, self.latest_ckpt_file_name = path, path
  self:_prune(path)
end

-- Keep the newest keep_checkpoint_max files "<prefix>-*.<format>" (newest included).
function ModelCheckpoint:_prune(newest)
  local keep = self.config.keep_checkpoint_max
  if not keep or keep <= 0 then return end
  local old = {}
  for _, f in ipairs(self:_files()) do if f.path ~= newest then old[#old + 1] = f.path end end
  for i = 1, #old - (keep - 1) do os.remove(old[i]) end
end

function ModelCheckpoint:on_train_step_end(ctx) self:_save(ctx, false) end

function ModelCheckpoint:on_train_end(ctx) self:_save(ctx, true) end

--- MindSpore's _save_final_ckpt (exception_save): "<prefix>-<epoch>_<step_in_epoch>_breakpoint.ckpt"
-- with the append_dict of that moment, encrypted as configured; plain .ckpt, no crc.
function ModelCheckpoint:_exception_save(model, ctx)
  local prefix = cbs().unique_prefix(self.directory, self.base_prefix, true)
  local epoch, step = model._current_epoch_num or ctx.cur_epoch_num, model._current_step_num or 0
  local path = string.format("%s/%s-%d_%d_breakpoint.ckpt", self.directory, prefix, epoch, step)
  if self.append_dict.epoch_num ~= nil then self.append_dict.epoch_num = self._append_epoch_num + epoch end
  if self.append_dict.step_num ~= nil then self.append_dict.step_num = self._append_step_num + step end
  self:_write(model.train_network, path, false)
  self.breakpoint = path
  return path
end

return ModelCheckpoint
